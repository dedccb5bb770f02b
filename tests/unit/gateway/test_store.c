/* test_store.c - store.c and the three Lua scripts against a real
 * redis-server (tests/support/redis_fixture), driven end to end through
 * cg_chat_* with real bodies on a real libuv loop.
 *
 * Every test starts its own server and store (start()), runs the loop with
 * RUN_UNTIL until what it waits for happened (or a deadline passed: the
 * assertion that follows then fails), and tears everything down in
 * teardown(), which asserts uv_loop_close() == 0: every handle, including
 * the hiredis adapter's poll handles, was closed. */
#include "fmacros.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <uv.h>

#include "chat/chat.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store.h"
#include "config_test.h"
#include "redis_fixture.h"

#ifndef CG_REDIS_SERVER
#define CG_REDIS_SERVER "redis-server"
#endif

/* ---- environment ------------------------------------------------------ */

#define MAX_PUSHES 1024
#define MAX_STATES 64

struct push {
    uint64_t uid;
    char    *payload;
    size_t   len;
};

static struct {
    int                     started;
    uv_loop_t               loop;
    uv_timer_t              tick;
    struct cg_redis_fixture redis;
    struct cg_config        cfg;
    char                    url[160];
    struct cg_metrics       m;
    cg_store               *st;
    cg_chat                *chat;
    int                     states[MAX_STATES];
    int                     nstates;
    int                     full;          /* last state_cb value */
    int                     down_seq;      /* seq of the first state_cb(0) */
    struct push             pushes[MAX_PUSHES];
    size_t                  npushes;
    int                     closed;
    int                     seq;           /* ordering of callbacks */
    unsigned                push_delay_us; /* on_push works this long */
} E;

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
    if (E.nstates < MAX_STATES)
        E.states[E.nstates++] = ready;
    if (!ready && E.down_seq == 0)
        E.down_seq = ++E.seq;
    E.full = ready;
}

static void
on_push(uint64_t uid, const char *payload, size_t len, void *data)
{
    (void)data;
    if (E.push_delay_us)
        usleep(E.push_delay_us);           /* a busy loop, as under load */
    if (E.npushes < MAX_PUSHES) {
        E.pushes[E.npushes].uid = uid;
        E.pushes[E.npushes].payload = strndup(payload, len);
        E.pushes[E.npushes].len = len;
        E.npushes++;
    }
}

static void
test_config(struct cg_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->redis_url = E.url;
    cg_test_redis_url(cfg, E.url);
    cfg->redis_timeout_ms = 2000;
    cfg->redis_reconnect_max_ms = 400;
    cfg->max_content_bytes = 16384;
    cfg->send_rate = 1000;
    cfg->send_burst = 1000;
    cfg->max_pending = 100000;
    cfg->max_pending_per_sender = 1000;
    cfg->history_max = 1000;
    cfg->sync_batch = 100;
    cfg->init_batch = 256;
}

/* Start a private redis-server (extra: more redis-server arguments). */
static void
start_redis(const char *const *extra)
{
    memset(&E, 0, sizeof E);
    cg_log_set_level(CG_LOG_ERROR);
    for (int i = 0; extra && extra[i]; i++)
        E.redis.extra[i] = extra[i];
    /* $CHATGATE_REDIS_SERVER, when set, wins over the configured path. */
    cr_assert(eq(int, cg_redis_fixture_start(&E.redis, getenv("CHATGATE_REDIS_SERVER")
                                                 ? NULL : CG_REDIS_SERVER), 0),
              "redis-server must start");
}

/* Create the store and chat on a fresh loop; url NULL means the fixture's
 * socket; tweak may change the config. With wait, returns once ready. */
static void
start_store(void (*tweak)(struct cg_config *), const char *url, int wait)
{
    if (url == NULL)
        snprintf(E.url, sizeof E.url, "unix://%s", E.redis.sock);
    else
        snprintf(E.url, sizeof E.url, "%s", url);
    test_config(&E.cfg);
    if (tweak)
        tweak(&E.cfg);
    cr_assert(eq(int, uv_loop_init(&E.loop), 0));
    uv_timer_init(&E.loop, &E.tick);
    uv_timer_start(&E.tick, on_tick, 5, 5);
    cr_assert(eq(int, cg_store_create(&E.loop, &E.cfg, &E.m, &E.st), 0));
    cg_store_set_state_cb(E.st, on_state, NULL);
    cg_store_set_push_cb(E.st, on_push, NULL);
    cr_assert(eq(int, cg_chat_create(&E.cfg, E.st, &E.m, &E.chat), 0));
    E.started = 1;
    if (!wait)
        return;
    RUN_UNTIL(E.full == 1, 5000);
    cr_assert(eq(int, E.full, 1), "store must become ready");
    cr_assert(eq(int, cg_store_ready(E.st), 1));
}

/* A server, a store and a chat, ready. */
static void
start(void (*tweak)(struct cg_config *))
{
    start_redis(NULL);
    start_store(tweak, NULL, 1);
}

static void
on_closed(void *data)
{
    (void)data;
    E.closed = ++E.seq;
}

/* Tear everything down; check != 0 asserts that close_cb fired and that
 * every handle was closed (uv_loop_close() == 0). */
static void
teardown_impl(int check)
{
    int loop_rc;

    if (!E.started)
        return;
    E.started = 0;
    cg_chat_destroy(E.chat);
    E.chat = NULL;
    if (E.st) {
        cg_store_close(E.st, on_closed, NULL);
        E.st = NULL;
        RUN_UNTIL(E.closed != 0, 5000);
        if (check)
            cr_assert(E.closed != 0, "close_cb must fire");
    }
    uv_close((uv_handle_t *)&E.tick, NULL);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    loop_rc = uv_loop_close(&E.loop);
    cg_test_redis_url_done(&E.cfg);
    cg_redis_fixture_stop(&E.redis);
    for (size_t i = 0; i < E.npushes; i++)
        free(E.pushes[i].payload);
    E.npushes = 0;
    if (check)
        cr_assert(eq(int, loop_rc, 0), "every handle must be closed");
}

/* The end of every test: Criterion does not fail a test for assertions in
 * .fini, so the checks run here, in the test body. */
static void
finish(void)
{
    teardown_impl(1);
}

/* .fini: cleans up after a test that stopped at a failed assertion. */
static void
teardown(void)
{
    teardown_impl(0);
}

/* ---- Redis inspection (blocking, through the fixture) ------------------- */

/* One fixed command (no arguments to format). */
static redisReply *
rcommand(const char *cmd)
{
    return cg_redis_fixture_command(&E.redis, cmd);
}

static long long
rint_(const char *fmt, const char *a, const char *b)
{
    redisReply *r = cg_redis_fixture_command(&E.redis, fmt, a, b);
    long long v;

    cr_assert(r != NULL);
    cr_assert(eq(int, r->type, REDIS_REPLY_INTEGER), "reply type %d", r->type);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* String reply or NULL for nil; caller frees. */
static char *
rstr(const char *fmt, const char *a, const char *b)
{
    redisReply *r = cg_redis_fixture_command(&E.redis, fmt, a, b);
    char *s = NULL;

    cr_assert(r != NULL);
    if (r->type == REDIS_REPLY_STRING)
        s = strndup(r->str, r->len);
    else
        cr_assert(eq(int, r->type, REDIS_REPLY_NIL));
    freeReplyObject(r);
    return s;
}

/* The history mark of uid ({u:<uid>}:user "trimmed"), -1 if unset. */
static long long
trimmed_of(uint64_t uid)
{
    char key[64], *v;
    long long n = -1;

    snprintf(key, sizeof key, "{u:%llu}:user", (unsigned long long)uid);
    if ((v = rstr("HGET %s %s", key, "trimmed")) != NULL)
        n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

static void
add_user(uint64_t uid, const char *name)
{
    char key[CG_STORE_KEY_MAX];
    redisReply *r;

    cg_store_key(key, sizeof key, uid, "user");
    r = cg_redis_fixture_command(&E.redis, "HSET %s name %s", key, name);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

static void
add_users(void)
{
    add_user(1, "alice");
    add_user(2, "bob");
    add_user(3, "carol");
}

/* ---- chat calls --------------------------------------------------------- */

struct ans {
    int                called;
    int                err;
    enum cg_chat_topic topic;
    char              *body;
    int                seq;
};

static void
on_done(uint64_t sid, void *ticket, int err, enum cg_chat_topic topic,
        struct cg_buf *body, void *data)
{
    struct ans *a = ticket;

    (void)sid;
    (void)data;
    a->called++;
    a->err = err;
    a->topic = topic;
    a->seq = ++E.seq;
    free(a->body);
    a->body = body ? strndup(body->data, body->len) : NULL;
    cg_buf_unref(body);
}

struct result {
    int       code;
    long long id;
    long long time;
    char      msgid[80];
    char     *body;
};

static long long
jget_int(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

static struct result
parse_status(const struct ans *a)
{
    struct result res = { .code = -1, .id = -1, .time = -1 };
    json_t *o;

    cr_assert(eq(int, a->called, 1), "done must fire exactly once");
    cr_assert(eq(int, a->err, 0));
    cr_assert(a->body != NULL);
    o = json_loads(a->body, 0, NULL);
    cr_assert(o != NULL, "status must be JSON: %s", a->body);
    res.code = (int)jget_int(o, "code");
    res.id = jget_int(o, "id");
    res.time = jget_int(o, "time");
    if (json_is_string(json_object_get(o, "msgID")))
        snprintf(res.msgid, sizeof res.msgid, "%s",
                 json_string_value(json_object_get(o, "msgID")));
    res.body = a->body;
    json_decref(o);
    return res;
}

static struct result
do_send(uint64_t uid, const char *name, const char *body)
{
    static struct ans a;
    struct cg_chat_conn conn;
    struct cg_chat_caller who = { .sid = 7, .uid = uid, .name = name, .want_delivered = 1 };

    free(a.body);
    memset(&a, 0, sizeof a);
    cg_chat_conn_init(&conn, &E.cfg);
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &who, body, strlen(body), on_done, &a, NULL), 0));
    RUN_UNTIL(a.called, 5000);
    cr_assert(eq(int, a.topic, CG_TOPIC_SEND_STATUS));
    return parse_status(&a);
}

static struct result
send_msg(uint64_t from, const char *name, uint64_t to, const char *msgid, const char *content)
{
    char body[512];

    snprintf(body, sizeof body, "{\"msgID\":\"%s\",\"reciverId\":%llu,\"content\":\"%s\"}",
             msgid, (unsigned long long)to, content);
    return do_send(from, name, body);
}

static struct result
do_recive(uint64_t uid, const char *name, const char *msgid, uint64_t by_id)
{
    static struct ans a;
    struct cg_chat_caller who = { .sid = 8, .uid = uid, .name = name };
    char body[128];

    free(a.body);
    memset(&a, 0, sizeof a);
    snprintf(body, sizeof body, "{\"msgID\":\"%s\"}", msgid ? msgid : "");
    cr_assert(eq(int, cg_chat_recive(E.chat, &who, body, strlen(body), by_id, on_done, &a,
                                     NULL), 0));
    RUN_UNTIL(a.called, 5000);
    cr_assert(eq(int, a.topic, CG_TOPIC_RECIVE_STATUS));
    return parse_status(&a);
}

struct fetched {
    int      called;
    int      err;
    int      more;
    uint64_t position;
    size_t   n;
    uint64_t id[16];
    int64_t  time[16];
    int      red[16];
    char    *body[16];
};

static void
on_fetch(uint64_t sid, void *ticket, int err, const struct cg_chat_item *items, size_t n,
         int more, uint64_t position, void *data)
{
    struct fetched *f = ticket;

    (void)sid;
    (void)data;
    f->called++;
    f->err = err;
    f->more = more;
    f->position = position;
    f->n = n;
    for (size_t i = 0; i < n && i < 16; i++) {
        f->id[i] = items[i].id;
        f->time[i] = items[i].time_ms;
        f->red[i] = items[i].redelivered;
        f->body[i] = strndup(items[i].body->data, items[i].body->len);
    }
}

static void
fetched_free(struct fetched *f)
{
    for (size_t i = 0; i < f->n && i < 16; i++)
        free(f->body[i]);
    memset(f, 0, sizeof *f);
}

static void
do_fetch(struct fetched *f, uint64_t uid, int sync, uint64_t after, size_t limit)
{
    struct cg_chat_caller who = { .sid = 9, .uid = uid, .name = "bob" };

    memset(f, 0, sizeof *f);
    cr_assert(eq(int, cg_chat_fetch(E.chat, &who, sync, after, limit, on_fetch, f, NULL), 0));
    RUN_UNTIL(f->called, 5000);
    cr_assert(eq(int, f->called, 1));
    cr_assert(eq(int, f->err, 0));
}

/* Pushes for uid whose payload starts with prefix. */
static size_t
count_pushes(uint64_t uid, const char *prefix)
{
    size_t n = 0;

    for (size_t i = 0; i < E.npushes; i++)
        if (E.pushes[i].uid == uid && strncmp(E.pushes[i].payload, prefix, strlen(prefix)) == 0)
            n++;
    return n;
}

static const struct push *
find_push(uint64_t uid, const char *prefix)
{
    for (size_t i = 0; i < E.npushes; i++)
        if (E.pushes[i].uid == uid && strncmp(E.pushes[i].payload, prefix, strlen(prefix)) == 0)
            return &E.pushes[i];
    return NULL;
}

struct subwait {
    int called;
    int err;
    int seq;
};

static void
on_sub(const struct cg_store_reply *r, int err, void *data)
{
    struct subwait *w = data;

    cr_assert(r == NULL);
    w->called++;
    w->err = err;
    w->seq = ++E.seq;
}

static void
subscribe_wait(uint64_t uid)
{
    struct subwait w = { 0 };

    cr_assert(eq(int, cg_store_subscribe(E.st, uid, on_sub, &w), 0));
    RUN_UNTIL(w.called, 5000);
    cr_assert(eq(int, w.called, 1));
    cr_assert(eq(int, w.err, 0));
}

/* Publish through the store and wait until it comes back on our own
 * subscription: everything published before it has arrived too. */
static void
barrier(uint64_t uid)
{
    char ch[32];
    const char *argv[3] = { "PUBLISH", ch, "Xbarrier" };
    size_t before = count_pushes(uid, "Xbarrier");

    cg_store_channel(ch, sizeof ch, uid);
    cr_assert(eq(int, cg_store_command(E.st, 3, argv, NULL, NULL, NULL), 0));
    RUN_UNTIL(count_pushes(uid, "Xbarrier") > before, 5000);
    cr_assert(count_pushes(uid, "Xbarrier") > before);
}

struct cmdwait {
    int         called;
    int         err;
    int         reply_null;
    int         seq;
    long long   integer;
};

static void
on_cmd(const struct cg_store_reply *r, int err, void *data)
{
    struct cmdwait *w = data;

    w->called++;
    w->err = err;
    w->reply_null = r == NULL;
    w->integer = cg_store_reply_type(r) == CG_STORE_REPLY_INTEGER
               ? cg_store_reply_integer(r) : -1;
    w->seq = ++E.seq;
}

/* ---- tweaks ------------------------------------------------------------ */

static void small_pending(struct cg_config *c) { c->max_pending = 2; }
static void small_history(struct cg_config *c) { c->history_max = 2; }
static void slow_timeout(struct cg_config *c) { c->redis_timeout_ms = 10000; }
static void fast_timeout(struct cg_config *c) { c->redis_timeout_ms = 300; }

/* ---- tests ------------------------------------------------------------- */

TestSuite(store, .fini = teardown, .timeout = 60);

Test(store, becomes_ready_after_connect_and_loads_scripts)
{
    start(NULL);
    cr_assert(eq(int, E.nstates, 1));
    cr_assert(eq(int, E.states[0], 1));
    cr_assert(eq(sz, cg_store_inflight(E.st), 0));
    cr_assert(cg_store_script_source(CG_SCRIPT_CHAT) != NULL);
    cr_assert(cg_store_script_source(CG_SCRIPT_MAX) == NULL);
    finish();
}

/* What a reply callback saw, copied out: the view is gone once it returns. */
struct viewed {
    int       called;
    int       err;
    int       type, types[5];
    size_t    count;
    long long integer;
    char      str[32];
    size_t    len;
};

static void
on_view(const struct cg_store_reply *r, int err, void *data)
{
    struct viewed *v = data;
    const char *s = cg_store_reply_str(r, &v->len);

    v->called++;
    v->err = err;
    v->type = (int)cg_store_reply_type(r);
    v->count = cg_store_reply_count(r);
    v->integer = cg_store_reply_integer(r);
    if (s != NULL)
        snprintf(v->str, sizeof v->str, "%s", s);     /* its start, NUL-terminated */
    for (size_t i = 0; i < 5; i++)
        v->types[i] = (int)cg_store_reply_type(cg_store_reply_element(r, i));
    if (v->count >= 3) {
        const struct cg_store_reply *e = cg_store_reply_element(r, 1);
        const struct cg_store_reply *inner = cg_store_reply_element(r, 2);

        s = cg_store_reply_str(e, &v->len);
        snprintf(v->str, sizeof v->str, "%s", s);
        v->integer = cg_store_reply_integer(cg_store_reply_element(inner, 0));
    }
}

static void
view_command(struct viewed *v, int argc, const char **argv)
{
    memset(v, 0, sizeof *v);
    cr_assert(eq(int, cg_store_command(E.st, argc, argv, NULL, on_view, v), 0));
    RUN_UNTIL(v->called, 5000);
    cr_assert(eq(int, v->called, 1));
    cr_assert(eq(int, v->err, 0));
}

Test(store, replies_are_read_through_the_stores_own_view)
{
    const char *eval[] = { "EVAL", "return {7, 'two', {3}, false}", "0" };
    const char *set[] = { "SET", "k", "v" };
    const char *incr[] = { "INCR", "k" };
    const char *get[] = { "GET", "nothing" };
    struct viewed v;

    start(NULL);
    view_command(&v, 3, eval);              /* [7, "two", [3], nil] */
    cr_assert(eq(int, v.type, CG_STORE_REPLY_ARRAY));
    cr_assert(eq(sz, v.count, 4));
    cr_assert(eq(int, v.types[0], CG_STORE_REPLY_INTEGER));
    cr_assert(eq(int, v.types[1], CG_STORE_REPLY_STRING));
    cr_assert(eq(int, v.types[2], CG_STORE_REPLY_ARRAY));
    cr_assert(eq(int, v.types[3], CG_STORE_REPLY_NIL));
    cr_assert(eq(int, v.types[4], CG_STORE_REPLY_NONE), "past the end: no element");
    cr_assert(eq(str, v.str, "two"));
    cr_assert(eq(sz, v.len, 3));
    cr_assert(eq(i64, v.integer, 3), "an element of an element");

    view_command(&v, 3, set);
    cr_assert(eq(int, v.type, CG_STORE_REPLY_STATUS));
    cr_assert(eq(str, v.str, "OK"));
    cr_assert(eq(sz, v.count, 0));
    cr_assert(eq(int, v.types[0], CG_STORE_REPLY_NONE), "no elements but in an array");

    view_command(&v, 2, incr);              /* "v" is no number */
    cr_assert(eq(int, v.type, CG_STORE_REPLY_ERROR));
    cr_assert(eq(int, strncmp(v.str, "ERR", 3), 0), "%s", v.str);
    cr_assert(eq(i64, v.integer, 0), "no integer but in an INTEGER");

    view_command(&v, 2, get);
    cr_assert(eq(int, v.type, CG_STORE_REPLY_NIL));
    cr_assert(eq(sz, v.len, 0));
    cr_assert(eq(str, v.str, ""), "no bytes but in a string");

    /* NULL is no reply, for every accessor. */
    cr_assert(eq(int, cg_store_reply_type(NULL), CG_STORE_REPLY_NONE));
    cr_assert(eq(i64, cg_store_reply_integer(NULL), 0));
    cr_assert(eq(ptr, (void *)cg_store_reply_str(NULL, &v.len), NULL));
    cr_assert(eq(sz, v.len, 0));
    cr_assert(eq(sz, cg_store_reply_count(NULL), 0));
    cr_assert(eq(ptr, (void *)cg_store_reply_element(NULL, 0), NULL));
    finish();
}

Test(store, key_schema_helpers)
{
    char b[CG_STORE_KEY_MAX];

    cr_assert(eq(int, cg_store_key(b, sizeof b, 42, "pending"), 14));
    cr_assert(eq(str, b, "{u:42}:pending"));
    cr_assert(eq(int, cg_store_channel(b, sizeof b, 42), 7));
    cr_assert(eq(str, b, "cg:u:42"));
    cr_assert(eq(int, cg_store_key(b, sizeof b, UINT64_MAX, "pending"), 32));
    cr_assert(eq(int, cg_store_key(b, 8, 42, "pending"), CG_E_INVAL));
    cr_assert(eq(int, cg_store_channel(b, 4, 42), CG_E_INVAL));
    finish();
}

Test(store, send_stores_once_and_retry_returns_first_id)
{
    char expect[512], *stored, *ids;
    struct result r;

    start(NULL);
    add_users();
    r = send_msg(1, "alice", 2, "msg-0001", "起来聊天");
    cr_assert(eq(int, r.code, 200), "%s", r.body);
    cr_assert(eq(i64, r.id, 1));
    cr_assert(r.time > 1500000000000LL);
    cr_assert(eq(str, r.msgid, "msg-0001"));
    snprintf(expect, sizeof expect,
             "{\"msgID\":\"msg-0001\",\"code\":200,\"status\":\"成功\",\"content\":\"ok\","
             "\"id\":1,\"time\":%lld}", r.time);
    cr_assert(eq(str, r.body, expect));

    stored = rstr("HGET %s %s", "{u:2}:msg", "1");
    snprintf(expect, sizeof expect,
             "{\"id\":1,\"chatID\":\"msg-0001\",\"sender\":\"alice\",\"reciver\":\"bob\","
             "\"content\":\"起来聊天\",\"time\":%lld,\"senderId\":1,\"reciverId\":2}", r.time);
    cr_assert(eq(str, stored, expect));
    free(stored);
    /* The msgID entry: sender 1, id 1, its time, the content's digest
     * (the first 8 bytes of SHA-1("起来聊天")), flags 2: a delivered notice
     * wanted (do_send asks for it), not pushed (nobody subscribed to bob's
     * channel). */
    ids = rstr("HGET %s %s", "{u:2}:msg", "m:msg-0001");
    snprintf(expect, sizeof expect, "1:1:%lld:da04bee6dd52fec7:2", r.time);
    cr_assert(eq(str, ids, expect));
    free(ids);
    cr_assert(eq(i64, rint_("ZCARD %s", "{u:2}:pending", NULL), 1));
    /* The history is implicit (ids above "trimmed"): no set to keep. */
    cr_assert(eq(i64, rint_("EXISTS %s", "{u:2}:hist", NULL), 0));
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:user", "trimmed"), 0), "nothing trimmed yet");

    /* A retry: same id and time, nothing stored again. */
    long long t1 = r.time;
    r = send_msg(1, "alice", 2, "msg-0001", "起来聊天");
    cr_assert(eq(int, r.code, 200));
    cr_assert(eq(i64, r.id, 1));
    cr_assert(eq(i64, r.time, t1));
    cr_assert(eq(i64, rint_("HLEN %s", "{u:2}:msg", NULL), 2), "one body, one msgID entry");
    stored = rstr("GET %s", "{u:2}:seq", NULL);
    cr_assert(eq(str, stored, "1"));
    free(stored);

    /* Another sender with that msgID while it is pending: 409. */
    r = send_msg(3, "carol", 2, "msg-0001", "hello");
    cr_assert(eq(int, r.code, 409), "%s", r.body);
    cr_assert(eq(str, r.msgid, "msg-0001"));
    cr_assert(strstr(r.body, "\"status\":\"失败\"") != NULL);

    /* Once bob confirmed it, the msgID is free again for carol (it is no
     * longer pending); then it is alice's retry that is refused. */
    cr_assert(eq(int, do_recive(2, "bob", "msg-0001", 0).code, 200));
    r = send_msg(3, "carol", 2, "msg-0001", "hello");
    cr_assert(eq(int, r.code, 200), "%s", r.body);
    cr_assert(eq(i64, r.id, 2));
    cr_assert(eq(int, send_msg(1, "alice", 2, "msg-0001", "起来聊天").code, 409));
    /* The first message still answers a repeated ACK by its id. */
    cr_assert(eq(int, do_recive(2, "bob", NULL, 1).code, 200));
    cr_assert(eq(int, do_recive(2, "bob", NULL, 2).code, 200));
    cr_assert(eq(i64, rint_("ZCARD %s", "{u:2}:pending", NULL), 0));

    /* Unknown receiver: 404, nothing created for it. */
    r = send_msg(1, "alice", 99, "msg-0002", "anyone?");
    cr_assert(eq(int, r.code, 404), "%s", r.body);
    cr_assert(eq(str, r.body, "{\"msgID\":\"msg-0002\",\"code\":404,\"status\":\"失败\","
                              "\"content\":\"unknown receiver\"}"));
    cr_assert(eq(i64, rint_("EXISTS %s", "{u:99}:seq", NULL), 0));

    /* Ids keep increasing per receiver. */
    r = send_msg(3, "carol", 2, "msg-0003", "third");
    cr_assert(eq(int, r.code, 200));
    cr_assert(eq(i64, r.id, 3));

    cr_assert(eq(u64, E.m.sends[CG_SEND_200], 4));
    cr_assert(eq(u64, E.m.sends[CG_SEND_409], 2));
    cr_assert(eq(u64, E.m.sends[CG_SEND_404], 1));
    cr_assert(eq(u64, E.m.send_ack_ms.count, 4));
    cr_assert(E.m.redis_rtt_ms.count >= 10);
    finish();
}

Test(store, content_is_json_escaped_exactly_once)
{
    static const char body[] =
        "{\"msgID\":\"escape-01\",\"reciverId\":2,"
        "\"content\":\"say \\\"hi\\\"\\n\\\\ \\u0001 / \\u0000 end\"}";
    static const char content[] = "say \"hi\"\n\\ \x01 / \0 end";
    struct result r;
    char *stored;
    json_t *o;

    start(NULL);
    add_users();
    r = do_send(1, "alice", body);
    cr_assert(eq(int, r.code, 200), "%s", r.body);
    stored = rstr("HGET %s %s", "{u:2}:msg", "1");
    cr_assert(strstr(stored, "\"content\":\"say \\\"hi\\\"\\n\\\\ \\u0001 / \\u0000 end\",")
              != NULL, "%s", stored);
    o = json_loads(stored, JSON_ALLOW_NUL, NULL);
    cr_assert(o != NULL);
    json_t *c = json_object_get(o, "content");
    cr_assert(eq(sz, json_string_length(c), sizeof content - 1));
    cr_assert(memcmp(json_string_value(c), content, sizeof content - 1) == 0);
    json_decref(o);
    free(stored);
    finish();
}

Test(store, pending_inbox_full_answers_507_and_stores_nothing)
{
    struct result r;
    char *seq;

    start(small_pending);
    add_users();
    cr_assert(eq(int, send_msg(1, "alice", 2, "full-0001", "a").code, 200));
    cr_assert(eq(int, send_msg(1, "alice", 2, "full-0002", "b").code, 200));
    r = send_msg(1, "alice", 2, "full-0003", "c");
    cr_assert(eq(int, r.code, 507), "%s", r.body);
    cr_assert(eq(str, r.body, "{\"msgID\":\"full-0003\",\"code\":507,\"status\":\"失败\","
                              "\"content\":\"receiver's pending inbox is full (max_pending 2)\"}"));
    cr_assert(eq(i64, rint_("ZCARD %s", "{u:2}:pending", NULL), 2));
    seq = rstr("GET %s", "{u:2}:seq", NULL);
    cr_assert(eq(str, seq, "2"));
    free(seq);
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "m:full-0003"), 0));
    /* A retry of a stored message is still answered while full. */
    cr_assert(eq(int, send_msg(1, "alice", 2, "full-0002", "b").code, 200));
    cr_assert(eq(u64, E.m.sends[CG_SEND_507], 1));
    finish();
}

Test(store, push_reaches_the_receivers_channel_and_marks_delivered)
{
    char expect[600], *stored;
    struct result r;
    const struct push *p;

    start(NULL);
    add_users();
    subscribe_wait(2);
    r = send_msg(1, "alice", 2, "push-0001", "hello bob");
    cr_assert(eq(int, r.code, 200));
    RUN_UNTIL(find_push(2, "M") != NULL, 5000);
    p = find_push(2, "M");
    cr_assert(p != NULL);
    stored = rstr("HGET %s %s", "{u:2}:msg", "1");
    snprintf(expect, sizeof expect, "M1:%lld:%s", r.time, stored);
    cr_assert(eq(str, p->payload, expect));
    free(stored);
    /* Pushed to a subscriber: marked, so a later init says redelivered. */
    stored = rstr("HGET %s %s", "{u:2}:msg", "m:push-0001");
    snprintf(expect, sizeof expect, "1:1:%lld:8b2ff42af08a4a36:3", r.time); /* pushed + notice */
    cr_assert(eq(str, stored, expect));
    free(stored);
    finish();
}

Test(store, recive_confirms_once_and_notifies_the_sender)
{
    struct result r;
    const struct push *p;
    char expect[200];

    start(NULL);
    add_users();
    subscribe_wait(1);                       /* alice, the sender */
    cr_assert(eq(int, send_msg(1, "alice", 2, "conf-0001", "x").code, 200));

    r = do_recive(2, "bob", "conf-0001", 0);
    cr_assert(eq(int, r.code, 200));
    cr_assert(eq(str, r.body, "{\"msgID\":\"conf-0001\",\"code\":200,\"status\":\"成功\","
                              "\"content\":\"ok\"}"));
    RUN_UNTIL(find_push(1, "D") != NULL, 5000);
    p = find_push(1, "D");
    cr_assert(p != NULL);
    snprintf(expect, sizeof expect, "D{\"msgID\":\"conf-0001\",\"id\":1,\"reciverId\":2,\"time\":");
    cr_assert(eq(int, strncmp(p->payload, expect, strlen(expect)), 0), "%s", p->payload);
    json_t *o = json_loads(p->payload + 1, 0, NULL);
    cr_assert(o != NULL);
    cr_assert(jget_int(o, "time") > 1500000000000LL);
    json_decref(o);
    cr_assert(eq(i64, rint_("ZCARD %s", "{u:2}:pending", NULL), 0));
    /* Still in the history: kept for sync. */
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "1"), 1));

    /* Confirming again: 200, and no second notification. */
    r = do_recive(2, "bob", "conf-0001", 0);
    cr_assert(eq(int, r.code, 200));
    barrier(1);
    cr_assert(eq(sz, count_pushes(1, "D"), 1));

    /* Never addressed to bob: 404. */
    r = do_recive(2, "bob", "nosuchmsg1", 0);
    cr_assert(eq(str, r.body, "{\"msgID\":\"nosuchmsg1\",\"code\":404,\"status\":\"失败\","
                              "\"content\":\"no such message for this user\"}"));
    /* Alice's own inbox does not hold it either. */
    r = do_recive(1, "alice", "conf-0001", 0);
    cr_assert(eq(int, r.code, 404));

    /* By id (a STOMP ACK): the msgID comes from the store. */
    cr_assert(eq(int, send_msg(1, "alice", 2, "conf-0002", "y").code, 200));
    r = do_recive(2, "bob", NULL, 2);
    cr_assert(eq(int, r.code, 200));
    cr_assert(eq(str, r.msgid, "conf-0002"));
    cr_assert(eq(int, do_recive(2, "bob", NULL, 77).code, 404));

    cr_assert(eq(u64, E.m.confirmations, 3));
    cr_assert(eq(u64, E.m.confirm_ms.count, 2));
    finish();
}

Test(store, init_reads_pending_oldest_first_with_redelivered_marks)
{
    struct fetched f;
    char *stored;

    start(NULL);
    add_users();
    cr_assert(eq(int, send_msg(1, "alice", 2, "init-0001", "one").code, 200));
    do_fetch(&f, 2, 0, 0, 10);
    cr_assert(eq(sz, f.n, 1));
    cr_assert(eq(int, f.red[0], 0));
    fetched_free(&f);

    cr_assert(eq(int, send_msg(1, "alice", 2, "init-0002", "two").code, 200));
    cr_assert(eq(int, send_msg(3, "carol", 2, "init-0003", "three").code, 200));

    do_fetch(&f, 2, 0, 0, 2);
    cr_assert(eq(sz, f.n, 2));
    cr_assert(eq(int, f.more, 1));
    cr_assert(eq(u64, f.id[0], 1));
    cr_assert(eq(u64, f.id[1], 2));
    cr_assert(eq(int, f.red[0], 1), "read by the first init");
    cr_assert(eq(int, f.red[1], 0));
    stored = rstr("HGET %s %s", "{u:2}:msg", "2");
    cr_assert(eq(str, f.body[1], stored));
    free(stored);
    json_t *o = json_loads(f.body[1], 0, NULL);
    cr_assert(eq(i64, jget_int(o, "time"), f.time[1]));
    json_decref(o);
    fetched_free(&f);

    do_fetch(&f, 2, 0, 2, 2);
    cr_assert(eq(sz, f.n, 1));
    cr_assert(eq(int, f.more, 0));
    cr_assert(eq(u64, f.id[0], 3));
    cr_assert(eq(int, f.red[0], 0));
    fetched_free(&f);

    /* A confirmed message leaves init; all others are now redelivered. */
    cr_assert(eq(int, do_recive(2, "bob", "init-0002", 0).code, 200));
    do_fetch(&f, 2, 0, 0, 10);
    cr_assert(eq(sz, f.n, 2));
    cr_assert(eq(u64, f.id[0], 1));
    cr_assert(eq(u64, f.id[1], 3));
    cr_assert(eq(int, f.red[0], 1));
    cr_assert(eq(int, f.red[1], 1));
    cr_assert(eq(int, f.more, 0));
    cr_assert(eq(u64, f.position, 3), "the end of bob's stream");
    fetched_free(&f);

    /* Everything confirmed: nothing pending, the position stays. */
    cr_assert(eq(int, do_recive(2, "bob", "init-0001", 0).code, 200));
    cr_assert(eq(int, do_recive(2, "bob", "init-0003", 0).code, 200));
    do_fetch(&f, 2, 0, 0, 10);
    cr_assert(eq(sz, f.n, 0));
    cr_assert(eq(u64, f.position, 3));
    fetched_free(&f);

    /* An empty inbox answers an empty batch, at 0 for a user never written to. */
    do_fetch(&f, 1, 0, 0, 10);
    cr_assert(eq(sz, f.n, 0));
    cr_assert(eq(int, f.more, 0));
    cr_assert(eq(u64, f.position, 0));
    finish();
}

Test(store, sync_reads_history_with_more_flag_and_changes_nothing)
{
    struct fetched f;

    start(NULL);
    add_users();
    cr_assert(eq(int, send_msg(1, "alice", 2, "sync-0001", "a").code, 200));
    cr_assert(eq(int, send_msg(1, "alice", 2, "sync-0002", "b").code, 200));
    cr_assert(eq(int, send_msg(1, "alice", 2, "sync-0003", "c").code, 200));
    cr_assert(eq(int, do_recive(2, "bob", "sync-0001", 0).code, 200));

    do_fetch(&f, 2, 1, 0, 2);
    cr_assert(eq(sz, f.n, 2));
    cr_assert(eq(int, f.more, 1));
    cr_assert(eq(u64, f.id[0], 1));
    cr_assert(eq(u64, f.id[1], 2));
    cr_assert(eq(int, f.red[0], 1), "confirmed counts as delivered");
    cr_assert(eq(int, f.red[1], 0));
    fetched_free(&f);

    do_fetch(&f, 2, 1, 2, 2);
    cr_assert(eq(sz, f.n, 1));
    cr_assert(eq(int, f.more, 0));
    cr_assert(eq(u64, f.id[0], 3));
    fetched_free(&f);

    /* sync marks nothing. */
    do_fetch(&f, 2, 1, 1, 1);
    cr_assert(eq(int, f.red[0], 0));
    cr_assert(eq(int, f.more, 1));
    fetched_free(&f);
    for (int i = 2; i <= 3; i++) {
        char mid[32], *e;
        snprintf(mid, sizeof mid, "m:sync-%04d", i);
        e = rstr("HGET %s %s", "{u:2}:msg", mid);
        cr_assert(e != NULL && e[strlen(e) - 1] == '2', "%s marked by a sync: %s", mid, e);
        free(e);
    }
    finish();
}

Test(store, history_trim_keeps_pending_messages)
{
    struct fetched f;

    start(small_history);
    add_users();
    cr_assert(eq(int, send_msg(1, "alice", 2, "trim-0001", "1").code, 200));
    cr_assert(eq(int, send_msg(1, "alice", 2, "trim-0002", "2").code, 200));
    cr_assert(eq(int, send_msg(1, "alice", 2, "trim-0003", "3").code, 200));
    cr_assert(eq(int, send_msg(1, "alice", 2, "trim-0004", "4").code, 200));
    cr_assert(eq(i64, trimmed_of(2), 2), "history 3..4");
    /* Out of the history but pending: kept. */
    cr_assert(eq(i64, rint_("HLEN %s", "{u:2}:msg", NULL), 2 * 4), "4 bodies, 4 msgIDs");

    /* Confirming one outside the history forgets it. */
    cr_assert(eq(int, do_recive(2, "bob", "trim-0001", 0).code, 200));
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "1"), 0));
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "m:trim-0001"), 0));
    /* Confirming one inside keeps it for sync... */
    cr_assert(eq(int, do_recive(2, "bob", "trim-0003", 0).code, 200));
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "3"), 1));
    /* ...until the history moves past it. */
    cr_assert(eq(int, send_msg(1, "alice", 2, "trim-0005", "5").code, 200));
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "3"), 0));
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "m:trim-0003"), 0));
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "2"), 1), "still pending");
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "4"), 1), "still pending");

    do_fetch(&f, 2, 1, 0, 10);
    cr_assert(eq(sz, f.n, 2));
    cr_assert(eq(u64, f.id[0], 4));
    cr_assert(eq(u64, f.id[1], 5));
    fetched_free(&f);
    do_fetch(&f, 2, 0, 0, 10);
    cr_assert(eq(sz, f.n, 3));
    cr_assert(eq(u64, f.id[0], 2));
    cr_assert(eq(u64, f.id[1], 4));
    cr_assert(eq(u64, f.id[2], 5));
    fetched_free(&f);
    finish();
}

Test(store, noscript_is_reloaded_and_retried_transparently)
{
    redisReply *r;
    struct fetched f;

    start(NULL);
    add_users();
    r = rcommand("SCRIPT FLUSH");
    cr_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    cr_assert(eq(int, send_msg(1, "alice", 2, "nosc-0001", "after flush").code, 200));
    r = rcommand("SCRIPT FLUSH");
    freeReplyObject(r);
    cr_assert(eq(int, do_recive(2, "bob", "nosc-0001", 0).code, 200));
    r = rcommand("SCRIPT FLUSH");
    freeReplyObject(r);
    do_fetch(&f, 2, 1, 0, 10);
    cr_assert(eq(sz, f.n, 1));
    fetched_free(&f);
    cr_assert(eq(u64, E.m.redis_errors, 0), "NOSCRIPT is not an error the caller sees");
    finish();
}

Test(store, killed_redis_fails_outstanding_commands_then_reconnects)
{
    struct cmdwait w = { 0 };
    const char *blpop[3] = { "BLPOP", "never", "0" };
    struct ans a = { 0 };
    struct cg_chat_conn conn;
    struct cg_chat_caller who = { .sid = 1, .uid = 1, .name = "alice" };
    static const char body[] = "{\"msgID\":\"down-0001\",\"reciverId\":2,\"content\":\"x\"}";
    struct result r;

    start(slow_timeout);
    add_users();
    cr_assert(eq(int, cg_store_command(E.st, 3, blpop, NULL, on_cmd, &w), 0));
    cr_assert(eq(sz, cg_store_inflight(E.st), 1));
    RUN_UNTIL(0, 50);
    cr_assert(eq(int, w.called, 0));

    cg_redis_fixture_kill(&E.redis);
    RUN_UNTIL(w.called && E.full == 0, 5000);
    cr_assert(eq(int, w.called, 1));
    cr_assert(eq(int, w.err, CG_E_STORE));
    cr_assert(eq(int, w.reply_null, 1));
    cr_assert(eq(int, E.full, 0));
    cr_assert(eq(int, cg_store_ready(E.st), 0));
    cr_assert(eq(sz, cg_store_inflight(E.st), 0));

    /* While down: commands fail at once (no callback), sends are refused
     * 503 at once and answered on the next loop turn, not inside the call. */
    w.called = 0;
    cr_assert(eq(int, cg_store_command(E.st, 3, blpop, NULL, on_cmd, &w), CG_E_STORE));
    cr_assert(eq(int, cg_store_subscribe(E.st, 5, NULL, NULL), CG_E_STORE));
    cg_chat_conn_init(&conn, &E.cfg);
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &who, body, sizeof body - 1, on_done, &a,
                                   NULL), 0));
    cr_assert(eq(int, a.called, 0), "not answered inside cg_chat_send");
    uv_run(&E.loop, UV_RUN_NOWAIT);
    cr_assert(eq(int, a.called, 1), "answered on the next loop turn");
    cr_assert(eq(int, w.called, 0), "a command refused at once never calls back");
    cr_assert(eq(str, a.body, "{\"msgID\":\"down-0001\",\"code\":503,\"status\":\"失败\","
                              "\"content\":\"store unavailable, retry\"}"));
    free(a.body);
    cr_assert(eq(int, cg_chat_fetch(E.chat, &who, 0, 0, 10, on_fetch, NULL, NULL), CG_E_STORE));

    /* Back: a fresh, empty server; the scripts are loaded again. */
    cr_assert(eq(int, cg_redis_fixture_restart(&E.redis), 0));
    RUN_UNTIL(E.full == 1, 10000);
    cr_assert(eq(int, E.full, 1));
    cr_assert(eq(int, cg_store_ready(E.st), 1));
    add_users();
    r = send_msg(1, "alice", 2, "down-0001", "x");
    cr_assert(eq(int, r.code, 200));
    cr_assert(eq(i64, r.id, 1));
    cr_assert(E.m.redis_reconnects >= 1);
    cr_assert(E.m.redis_errors >= 2);
    cr_assert(eq(u64, E.m.sends[CG_SEND_503], 1));
    /* states: up, down, up */
    cr_assert(E.nstates >= 3);
    cr_assert(eq(int, E.states[0], 1));
    cr_assert(eq(int, E.states[1], 0));
    cr_assert(eq(int, E.states[E.nstates - 1], 1));
    finish();
}

/* Redis stopped (SIGSTOP), its socket still open: no reply and no EOF, so
 * only the command deadline (redis_timeout_ms, 300 ms here) can end the
 * wait, by dropping the connection. The test asserts that order of events:
 * the store goes down (the drop), then the send is answered 503 (its reply
 * NULL from that drop), with no state change before. How long it takes is
 * not asserted: on an idle machine the 503 comes about 300-400 ms after the
 * send (the deadline plus up to one watchdog re-arm), well under the 5 s
 * that RUN_UNTIL waits. */
Test(store, hung_redis_answers_503_after_the_command_deadline)
{
    static struct ans a;
    struct cg_chat_conn conn;
    struct cg_chat_caller who = { .sid = 7, .uid = 1, .name = "alice" };
    static const char body[] = "{\"msgID\":\"hung-0001\",\"reciverId\":2,\"content\":\"x\"}";
    struct result r;

    start(fast_timeout);
    add_users();
    cg_redis_fixture_pause(&E.redis, 1);
    cg_chat_conn_init(&conn, &E.cfg);
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &who, body, sizeof body - 1, on_done, &a,
                                   NULL), 0));
    cr_assert(eq(int, E.down_seq, 0));
    RUN_UNTIL(a.called, 5000);
    r = parse_status(&a);
    cr_assert(eq(int, r.code, 503), "%s", r.body);
    cr_assert(gt(int, E.down_seq, 0), "the deadline dropped the connection");
    cr_assert(lt(int, E.down_seq, a.seq), "the 503 came from that drop, after it");
    cr_assert(eq(int, E.nstates, 2), "up, then down once: %d state changes", E.nstates);
    cr_assert(ge(u64, E.m.redis_errors, 1));
    free(a.body);
    a.body = NULL;
    cr_assert(eq(int, cg_store_ready(E.st), 0));
    cg_redis_fixture_pause(&E.redis, 0);
    RUN_UNTIL(E.full == 1 && cg_store_ready(E.st), 10000);
    cr_assert(eq(int, cg_store_ready(E.st), 1));
    /* The send did not reach Redis before the drop... or did: either way a
     * retry is safe and answers 200 with one stored copy. */
    r = send_msg(1, "alice", 2, "hung-0001", "x");
    cr_assert(eq(int, r.code, 200));
    cr_assert(eq(i64, rint_("HLEN %s", "{u:2}:msg", NULL), 2), "one body, one msgID entry");
    finish();
}

Test(store, subscribe_confirms_and_pushes_arrive)
{
    struct subwait w = { 0 };
    redisReply *r;

    start(NULL);
    subscribe_wait(5);
    /* Already subscribed: confirmed on the next loop turn, not inside. */
    cr_assert(eq(int, cg_store_subscribe(E.st, 5, on_sub, &w), 0));
    cr_assert(eq(int, w.called, 0));
    RUN_UNTIL(w.called, 1000);
    cr_assert(eq(int, w.called, 1));
    cr_assert(eq(int, w.err, 0));

    r = rcommand("PUBLISH cg:u:5 hello");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    RUN_UNTIL(find_push(5, "hello") != NULL, 5000);
    cr_assert(find_push(5, "hello") != NULL);
    cr_assert(eq(sz, E.pushes[0].len, 5));

    /* After unsubscribe nothing more arrives for 5. */
    cg_store_unsubscribe(E.st, 5);
    subscribe_wait(6);
    r = rcommand("PUBLISH cg:u:5 again");
    freeReplyObject(r);
    barrier(6);
    cr_assert(eq(sz, count_pushes(5, ""), 1));

    /* Unsubscribing a uid whose confirmation is due fires CG_E_CLOSED. */
    memset(&w, 0, sizeof w);
    cr_assert(eq(int, cg_store_subscribe(E.st, 9, on_sub, &w), 0));
    cg_store_unsubscribe(E.st, 9);
    cr_assert(eq(int, w.called, 0));
    RUN_UNTIL(w.called, 1000);
    cr_assert(eq(int, w.called, 1));
    cr_assert(eq(int, w.err, CG_E_CLOSED));
    cr_assert(eq(int, cg_store_subscribe(E.st, 0, NULL, NULL), CG_E_INVAL));
    finish();
}

/* A node behind on its pushes (a busy loop reading a long backlog) gets a
 * SUBSCRIBE's confirmation late, behind the backlog: the connection is
 * alive and must be kept, and the subscription confirmed. Before, the
 * watchdog counted only the confirmation and dropped the connection, and
 * with it every channel of the node. */
Test(store, a_confirmation_behind_a_backlog_of_messages_is_late_not_lost)
{
    struct subwait w = { 0 };
    redisReply *r;
    size_t states;

    start(fast_timeout);                   /* 300 ms */
    subscribe_wait(7);
    states = (size_t)E.nstates;
    /* 400 messages at 2 ms each: about 800 ms of work ahead of the
     * confirmation, more than redis_timeout_ms, with a message every 2 ms. */
    r = cg_redis_fixture_command(&E.redis, "EVAL %s 0",
                                 "for i = 1, 400 do redis.call('PUBLISH', 'cg:u:7', 'm' .. i) end "
                                 "return 1");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "%s", r && r->str ? r->str : "no reply");
    freeReplyObject(r);
    E.push_delay_us = 2000;
    cr_assert(eq(int, cg_store_subscribe(E.st, 8, on_sub, &w), 0));
    RUN_UNTIL(w.called, 10000);
    E.push_delay_us = 0;
    cr_assert(eq(int, w.called, 1));
    cr_assert(eq(int, w.err, 0), "the subscription failed: %d", w.err);
    cr_assert(eq(sz, count_pushes(7, "m"), 400));
    cr_assert(eq(int, E.nstates, (int)states), "the store went down and up again");
    finish();
}

/* A backlog on a connection is read in few loop turns: hiredis reads 16
 * KiB per call, and one call per wake-up kept a flooded subscriber 16 KiB
 * per turn behind (store_conn.c, on_poll). 1000 pushes of 2 KiB: at least
 * 125 turns with one read each; read until the socket is empty, a few
 * dozen at most. Only turns in which pushes arrived are counted, so a slow
 * machine (more turns waiting for Redis) does not change the figure. */
Test(store, a_backlog_is_read_in_few_loop_turns)
{
    redisReply *r;
    size_t turns = 0, before;

    start(NULL);
    subscribe_wait(7);
    r = cg_redis_fixture_command(&E.redis, "EVAL %s 0",
                                 "local pad = string.rep('x', 2048) "
                                 "for i = 1, 1000 do redis.call('PUBLISH', 'cg:u:7', 'm' .. pad) end "
                                 "return 1");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "%s", r && r->str ? r->str : "no reply");
    freeReplyObject(r);
    uint64_t dl = uv_hrtime() + 20000 * 1000000ull;
    while (count_pushes(7, "m") < 1000 && uv_hrtime() < dl) {
        before = E.npushes;
        uv_run(&E.loop, UV_RUN_ONCE);
        if (E.npushes > before)
            turns++;
    }
    cr_assert(eq(sz, count_pushes(7, "m"), 1000));
    cr_assert(lt(sz, turns, 64), "1000 pushes of 2 KiB took %zu loop turns", turns);
    finish();
}

Test(store, a_subscription_still_due_when_the_connection_drops_fails)
{
    struct subwait w = { 0 };
    redisReply *r;

    start(fast_timeout);
    subscribe_wait(7);                     /* confirmed: survives the drop */
    cg_redis_fixture_pause(&E.redis, 1);   /* hung: no confirmation comes */
    cr_assert(eq(int, cg_store_subscribe(E.st, 8, on_sub, &w), 0));
    RUN_UNTIL(w.called, 5000);
    cr_assert(eq(int, w.called, 1));
    cr_assert(eq(int, w.err, CG_E_STORE));
    cg_redis_fixture_pause(&E.redis, 0);
    RUN_UNTIL(E.full == 1 && E.nstates >= 3, 10000);
    cr_assert(eq(int, E.full, 1));
    /* 7 was subscribed again; 8 left the set with its failed callback. */
    r = rcommand("PUBSUB NUMSUB cg:u:7 cg:u:8");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 4);
    cr_assert(eq(i64, r->element[1]->integer, 1));
    cr_assert(eq(i64, r->element[3]->integer, 0));
    freeReplyObject(r);
    finish();
}

Test(store, resubscribes_every_channel_after_a_restart)
{
    redisReply *r;

    start(NULL);
    for (uint64_t uid = 100; uid < 400; uid++)    /* more than one batch */
        cr_assert(eq(int, cg_store_subscribe(E.st, uid, NULL, NULL), 0));
    subscribe_wait(7);
    cg_redis_fixture_kill(&E.redis);
    RUN_UNTIL(E.full == 0, 5000);
    cr_assert(eq(int, E.full, 0));
    cr_assert(eq(int, cg_redis_fixture_restart(&E.redis), 0));
    RUN_UNTIL(E.full == 1, 10000);
    cr_assert(eq(int, E.full, 1), "ready again only after re-subscribing");
    r = rcommand("PUBLISH cg:u:7 again");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    r = rcommand("PUBLISH cg:u:399 last");
    cr_assert(r && r->integer == 1);
    freeReplyObject(r);
    RUN_UNTIL(find_push(7, "again") && find_push(399, "last"), 5000);
    cr_assert(find_push(7, "again") != NULL);
    cr_assert(find_push(399, "last") != NULL);
    finish();
}

Test(store, close_fires_outstanding_callbacks_with_closed_first)
{
    struct cmdwait w = { 0 };
    const char *blpop[3] = { "BLPOP", "never", "0" };
    struct ans a = { 0 };
    struct cg_chat_conn conn;
    struct cg_chat_caller who = { .sid = 1, .uid = 1, .name = "alice" };
    static const char body[] = "{\"msgID\":\"clos-0001\",\"reciverId\":2,\"content\":\"x\"}";

    start(NULL);
    add_users();
    cr_assert(eq(int, cg_store_command(E.st, 3, blpop, NULL, on_cmd, &w), 0));
    cg_chat_conn_init(&conn, &E.cfg);
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &who, body, sizeof body - 1, on_done, &a,
                                   NULL), 0));
    cr_assert(eq(int, a.called, 0));
    cg_store_close(E.st, on_closed, NULL);
    E.st = NULL;
    cr_assert(eq(int, w.called, 1));
    cr_assert(eq(int, w.err, CG_E_CLOSED));
    cr_assert(eq(int, a.called, 1));
    cr_assert(eq(int, a.err, CG_E_CLOSED));
    cr_assert(a.body == NULL);
    cr_assert(eq(int, E.closed, 0), "close_cb fires later");
    RUN_UNTIL(E.closed, 5000);
    cr_assert(E.closed > a.seq);
    cr_assert(E.closed > w.seq);
    cr_assert(eq(int, E.full, 1), "no state callback while closing");
    finish();
}

Test(store, chat_destroy_answers_requests_in_flight)
{
    struct ans a = { 0 };
    struct cg_chat_conn conn;
    struct cg_chat_caller who = { .sid = 1, .uid = 1, .name = "alice" };
    static const char body[] = "{\"msgID\":\"dest-0001\",\"reciverId\":2,\"content\":\"x\"}";
    struct fetched f = { 0 };

    start(NULL);
    add_users();
    cg_chat_conn_init(&conn, &E.cfg);
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &who, body, sizeof body - 1, on_done, &a,
                                   NULL), 0));
    cr_assert(eq(int, cg_chat_fetch(E.chat, &who, 0, 0, 10, on_fetch, &f, NULL), 0));
    cg_chat_destroy(E.chat);
    E.chat = NULL;
    cr_assert(eq(int, a.called, 1));
    cr_assert(eq(int, a.err, CG_E_CLOSED));
    cr_assert(eq(int, f.called, 1));
    cr_assert(eq(int, f.err, CG_E_CLOSED));
    /* The store's replies come later and only free the orphans. */
    RUN_UNTIL(cg_store_inflight(E.st) == 0, 5000);
    cr_assert(eq(sz, cg_store_inflight(E.st), 0));
    cr_assert(eq(int, a.called, 1));
    cr_assert(eq(int, f.called, 1));
    /* The send itself went through. */
    cr_assert(eq(i64, rint_("ZCARD %s", "{u:2}:pending", NULL), 1));
    finish();
}

static const char *const with_password[] = { "--requirepass", "s3cr%t", NULL };

Test(store, authenticates_with_the_password_in_the_url)
{
    char url[200];

    start_redis(with_password);
    snprintf(url, sizeof url, "unix://:s3cr%%25t@%s?db=3", E.redis.sock);
    start_store(NULL, url, 1);
    add_users();
    /* add_users wrote to db 0; the store uses db 3: bob is unknown there. */
    cr_assert(eq(int, send_msg(1, "alice", 2, "auth-0001", "x").code, 404));
    finish();
}

Test(store, wrong_password_keeps_retrying_and_never_gets_ready)
{
    char url[200];

    start_redis(with_password);
    snprintf(url, sizeof url, "unix://:wrong@%s", E.redis.sock);
    start_store(NULL, url, 0);
    RUN_UNTIL(E.m.redis_errors >= 3, 5000);
    cr_assert(E.m.redis_errors >= 3, "each refused AUTH is counted, then retried");
    cr_assert(eq(int, cg_store_ready(E.st), 0));
    cr_assert(eq(int, E.nstates, 0));
    finish();
}

static char tcp_port[16];
static const char *tcp_args[] = { "--port", tcp_port, NULL };

Test(store, connects_over_tcp_by_host_name)
{
    char url[200];
    struct result r;

    /* A port unlikely to be taken; the fixture still waits on its socket. */
    snprintf(tcp_port, sizeof tcp_port, "%d", 20000 + (int)(getpid() % 20000));
    start_redis(tcp_args);
    snprintf(url, sizeof url, "redis://localhost:%s/2", tcp_port);
    start_store(NULL, url, 1);
    r = send_msg(1, "alice", 2, "tcp-00001", "x");
    cr_assert(eq(int, r.code, 404), "db 2 has no users");
    finish();
    /* and by address */
    start_redis(tcp_args);
    snprintf(url, sizeof url, "redis://127.0.0.1:%s", tcp_port);
    start_store(NULL, url, 1);
    add_users();
    cr_assert(eq(int, send_msg(1, "alice", 2, "tcp-00002", "x").code, 200));
    finish();
}

struct reentry {
    int closed_in_cb;
    struct cmdwait other;
};

static void
on_cmd_then_close(const struct cg_store_reply *r, int err, void *data)
{
    struct reentry *re = data;

    cr_assert(r != NULL);
    cr_assert(eq(int, err, 0));
    /* Closing from inside a reply callback: hiredis defers the free until
     * this callback returns; the other command still gets CG_E_CLOSED. */
    cg_store_close(E.st, on_closed, NULL);
    E.st = NULL;
    re->closed_in_cb = 1;
    cr_assert(eq(int, re->other.called, 0));
}

Test(store, close_from_inside_a_reply_callback)
{
    const char *ping[1] = { "PING" };
    const char *blpop[3] = { "BLPOP", "never", "0" };
    struct reentry re = { 0 };
    cg_store *st;

    start(NULL);
    st = E.st;
    cr_assert(eq(int, cg_store_command(st, 1, ping, NULL, on_cmd_then_close, &re), 0));
    cr_assert(eq(int, cg_store_command(st, 3, blpop, NULL, on_cmd, &re.other), 0));
    RUN_UNTIL(re.closed_in_cb && E.closed != 0, 5000);
    cr_assert(eq(int, re.closed_in_cb, 1));
    cr_assert(eq(int, re.other.called, 1));
    cr_assert(eq(int, re.other.err, CG_E_CLOSED));
    cr_assert(E.closed > re.other.seq);
    finish();
}

Test(store, every_failed_allocation_is_clean_on_a_live_store)
{
    struct result r;

    start(NULL);
    add_users();
    for (unsigned long n = 1; n <= 12; n++) {
        struct ans a = { 0 };
        struct subwait w = { 0 };
        struct cg_chat_conn conn;
        struct cg_chat_caller who = { .sid = 1, .uid = 1, .name = "alice" };
        char body[128];
        int rc, src;

        snprintf(body, sizeof body,
                 "{\"msgID\":\"oom-%06lu\",\"reciverId\":2,\"content\":\"x\"}", n);
        cg_chat_conn_init(&conn, &E.cfg);
        cg_alloc_fail_after(n);
        rc = cg_chat_send(E.chat, &conn, &who, body, strlen(body), on_done, &a, NULL);
        src = cg_store_subscribe(E.st, 1000 + n, on_sub, &w);
        RUN_UNTIL((rc != 0 || a.called) && (src != 0 || w.called), 5000);
        cg_alloc_fail_after(0);
        cr_assert(rc == 0 || rc == CG_E_NOMEM);
        cr_assert(eq(int, a.called, rc == 0 ? 1 : 0));
        cr_assert(a.err == 0 || a.err == CG_E_NOMEM);
        cr_assert(src == 0 || src == CG_E_NOMEM);
        cr_assert(eq(int, w.called, src == 0 ? 1 : 0));
        free(a.body);
    }
    cr_assert(eq(sz, cg_store_inflight(E.st), 0));
    /* Still healthy afterwards. */
    r = send_msg(1, "alice", 2, "oom-after", "x");
    cr_assert(eq(int, r.code, 200));
    finish();
}

/* ---- several command connections (redis_connections) -------------------- */

static void four_conns(struct cg_config *c) { c->redis_connections = 4; }
static void one_conn(struct cg_config *c) { c->redis_connections = 1; }
static void chunk_history(struct cg_config *c) { c->history_max = 32; }

/* Client ids (CLIENT LIST TYPE normal) whose last command was cmd; returns
 * how many, the first in *id. */
static size_t
clients_with_cmd(const char *cmd, long long *id)
{
    redisReply *r = rcommand("CLIENT LIST TYPE normal");
    char needle[64];
    size_t n = 0;

    cr_assert(r && r->type == REDIS_REPLY_STRING);
    snprintf(needle, sizeof needle, " cmd=%s ", cmd);
    for (char *line = r->str; line && *line; ) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strstr(line, needle)) {
            if (n++ == 0 && id)
                *id = strtoll(line + 3, NULL, 10);    /* "id=<n> ..." */
        }
        line = nl ? nl + 1 : NULL;
    }
    freeReplyObject(r);
    return n;
}

static size_t
normal_clients(void)
{
    redisReply *r = rcommand("CLIENT LIST TYPE normal");
    size_t n = 0;

    cr_assert(r && r->type == REDIS_REPLY_STRING);
    for (const char *p = r->str; (p = strstr(p, "id=")) != NULL; p += 3)
        if (p == r->str || p[-1] == '\n')
            n++;
    freeReplyObject(r);
    return n;
}

#define NORDER 40

Test(store, interleaved_sends_to_two_shards_keep_each_receivers_order)
{
    static struct ans a2[NORDER], a3[NORDER];
    struct cg_chat_conn conn;
    struct cg_chat_caller who = { .sid = 1, .uid = 1, .name = "alice" };
    size_t done;

    start(four_conns);
    add_users();
    /* The fixture's connection, 4 command connections and the subscriber
     * (TYPE normal until its first SUBSCRIBE). */
    cr_assert(eq(sz, normal_clients(), 6));
    cg_chat_conn_init(&conn, &E.cfg);
    for (int i = 0; i < NORDER; i++) {
        char body[128];
        snprintf(body, sizeof body,
                 "{\"msgID\":\"ord2-%04d\",\"reciverId\":2,\"content\":\"%d\"}", i, i);
        cr_assert(eq(int, cg_chat_send(E.chat, &conn, &who, body, strlen(body), on_done,
                                       &a2[i], NULL), 0));
        snprintf(body, sizeof body,
                 "{\"msgID\":\"ord3-%04d\",\"reciverId\":3,\"content\":\"%d\"}", i, i);
        cr_assert(eq(int, cg_chat_send(E.chat, &conn, &who, body, strlen(body), on_done,
                                       &a3[i], NULL), 0));
    }
    do {
        done = 0;
        for (int i = 0; i < NORDER; i++)
            done += (size_t)(a2[i].called + a3[i].called);
        if (done < 2 * NORDER)
            uv_run(&E.loop, UV_RUN_ONCE);
    } while (done < 2 * NORDER);
    for (int i = 0; i < NORDER; i++) {
        struct result r2 = parse_status(&a2[i]), r3 = parse_status(&a3[i]);
        cr_assert(eq(int, r2.code, 200));
        cr_assert(eq(int, r3.code, 200));
        /* Per receiver: answered in submission order, ids 1, 2, 3, ... */
        cr_assert(eq(i64, r2.id, i + 1));
        cr_assert(eq(i64, r3.id, i + 1));
        if (i > 0) {
            cr_assert(a2[i].seq > a2[i - 1].seq, "receiver 2 answered out of order");
            cr_assert(a3[i].seq > a3[i - 1].seq, "receiver 3 answered out of order");
        }
    }
    /* Two receivers, two shards (2 % 4, 3 % 4): two connections ran scripts. */
    cr_assert(eq(sz, clients_with_cmd("evalsha", NULL), 2));
    for (int i = 0; i < NORDER; i++) {
        free(a2[i].body);
        free(a3[i].body);
        a2[i].body = a3[i].body = NULL;
    }
    finish();
}

Test(store, killed_command_connection_fails_only_its_shard_and_reconnects)
{
    struct ans a2 = { 0 }, a3 = { 0 };
    struct cg_chat_conn conn;
    struct cg_chat_caller who = { .sid = 1, .uid = 1, .name = "alice" };
    static const char b2[] = "{\"msgID\":\"kill-0002\",\"reciverId\":2,\"content\":\"x\"}";
    static const char b3[] = "{\"msgID\":\"kill-0003\",\"reciverId\":3,\"content\":\"y\"}";
    long long victim = 0;
    char cmd[64];
    redisReply *r;
    struct result res;

    signal(SIGPIPE, SIG_IGN);
    start(four_conns);
    add_users();
    subscribe_wait(3);
    /* The connection of receiver 2's shard is the only one that ran a
     * script: bob's fetch. */
    {
        struct fetched f0;

        do_fetch(&f0, 2, 0, 0, 10);
        fetched_free(&f0);
    }
    cr_assert(eq(sz, clients_with_cmd("evalsha", &victim), 1));
    cr_assert(eq(int, send_msg(1, "alice", 2, "kill-0001", "a").code, 200));

    /* Two sends queued (not yet written: the loop has not run), then the
     * shard-2 connection is killed under them (their claims run on alice's
     * shard; the send to 2 then meets the dead connection). */
    cg_chat_conn_init(&conn, &E.cfg);
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &who, b2, sizeof b2 - 1, on_done, &a2,
                                   NULL), 0));
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &who, b3, sizeof b3 - 1, on_done, &a3,
                                   NULL), 0));
    snprintf(cmd, sizeof cmd, "CLIENT KILL ID %lld", victim);
    r = rcommand(cmd);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);

    RUN_UNTIL(a2.called && a3.called, 5000);
    res = parse_status(&a2);
    cr_assert(eq(int, res.code, 503), "the killed shard fails: %s", a2.body);
    res = parse_status(&a3);
    cr_assert(eq(int, res.code, 200), "the other shard is unaffected: %s", a3.body);
    cr_assert(eq(i64, res.id, 1));
    RUN_UNTIL(find_push(3, "M1:") != NULL, 5000);
    cr_assert(find_push(3, "M1:") != NULL, "the subscriber is unaffected");
    cr_assert(eq(u64, E.m.sends[CG_SEND_503], 1));

    /* Not ready while one command connection is down; then all back. */
    cr_assert(E.nstates >= 2);
    cr_assert(eq(int, E.states[1], 0));
    RUN_UNTIL(E.full == 1 && cg_store_ready(E.st), 5000);
    cr_assert(eq(int, E.full, 1));
    cr_assert(eq(int, cg_store_ready(E.st), 1));
    cr_assert(E.m.redis_reconnects >= 1);
    cr_assert(eq(sz, normal_clients(), 5), "4 command connections + the fixture's");
    /* The queued send never reached Redis: its retry is stored now, as id 2. */
    res = send_msg(1, "alice", 2, "kill-0002", "x");
    cr_assert(eq(int, res.code, 200));
    cr_assert(eq(i64, res.id, 2));
    free(a2.body);
    free(a3.body);
    finish();
}

Test(store, one_command_connection_works_too)
{
    struct fetched f;

    start(one_conn);
    add_users();
    cr_assert(eq(sz, normal_clients(), 3), "fixture, 1 command, subscriber");
    cr_assert(eq(int, send_msg(1, "alice", 2, "one-0001", "a").code, 200));
    cr_assert(eq(int, send_msg(1, "alice", 3, "one-0002", "b").code, 200));
    cr_assert(eq(int, do_recive(2, "bob", "one-0001", 0).code, 200));
    do_fetch(&f, 3, 0, 0, 10);
    cr_assert(eq(sz, f.n, 1));
    fetched_free(&f);
    finish();
}

Test(store, history_is_trimmed_in_chunks_and_keeps_pending)
{
    char mid[32], idk[16];
    struct result r;

    start(chunk_history);      /* history_max 32: slack 2, trims at ids % 3 == 0 */
    add_users();
    subscribe_wait(2);         /* pushes reach a subscriber: dlv marks are set */
    for (int i = 1; i <= 40; i++) {
        snprintf(mid, sizeof mid, "chunk-%04d", i);
        r = send_msg(1, "alice", 2, mid, "x");
        cr_assert(eq(int, r.code, 200));
        cr_assert(eq(i64, r.id, i));
    }
    /* Trimmed at id 39 to 32 (8..39), then 40 added. */
    cr_assert(eq(i64, trimmed_of(2), 7), "history 8..40");
    cr_assert(eq(i64, rint_("HLEN %s", "{u:2}:msg", NULL), 2 * 40), "all still pending");
    /* Confirm 1..20 but 3: those outside the history are forgotten at once. */
    for (int i = 1; i <= 20; i++) {
        if (i == 3)
            continue;
        snprintf(mid, sizeof mid, "chunk-%04d", i);
        cr_assert(eq(int, do_recive(2, "bob", mid, 0).code, 200));
    }
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "1"), 0));
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "8"), 1), "in the history");
    r = send_msg(1, "alice", 2, "chunk-0041", "x");
    cr_assert(eq(i64, trimmed_of(2), 7), "no trim at id 41");
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "8"), 1));
    r = send_msg(1, "alice", 2, "chunk-0042", "x");
    /* Trim at 42: 8, 9, 10 leave the history in one go; confirmed, so forgotten. */
    cr_assert(eq(i64, trimmed_of(2), 10), "history 11..42");
    for (int i = 8; i <= 10; i++) {
        snprintf(idk, sizeof idk, "%d", i);
        snprintf(mid, sizeof mid, "chunk-%04d", i);
        cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", idk), 0));
        snprintf(mid, sizeof mid, "m:chunk-%04d", i);
        cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", mid), 0));
    }
    /* 3 is still pending: kept, with its msgID and its delivered mark. */
    cr_assert(eq(i64, rint_("HEXISTS %s %s", "{u:2}:msg", "3"), 1));
    {
        char *e = rstr("HGET %s %s", "{u:2}:msg", "m:chunk-0003");
        cr_assert(e != NULL && strncmp(e, "1:3:", 4) == 0 && e[strlen(e) - 1] == '3', "%s", e);
        free(e);
    }
    /* msg = the 32 in the history (11..42) + 3, a body and a msgID each. */
    cr_assert(eq(i64, rint_("HLEN %s", "{u:2}:msg", NULL), 2 * 33));
    /* A msgID used again (by another sender) after its confirmation is not
     * dropped by the trim of its old id. */
    cr_assert(eq(int, send_msg(3, "carol", 2, "chunk-0011", "again").code, 200));
    cr_assert(eq(int, do_recive(2, "bob", "chunk-0011", 0).code, 200));
    finish();
}

/* No server at all: the store keeps retrying with backoff, counts every
 * failed attempt, is never ready meanwhile, and still closes cleanly at any
 * moment. The test runs until `attempts` failed attempts were counted (an
 * event) rather than for a fixed time. Their pace is not asserted: with
 * these settings (first delay 100 ms, doubling up to
 * redis_reconnect_max_ms = 200, jittered to [d/2, d]) they come at 0, then
 * 50-100 and 100-200 ms apart, so four take at most ~500 ms on an idle
 * machine; the 10 s below only bounds a test that would otherwise hang.
 * attempts == 0 closes before the loop ever ran: the first attempt waits
 * for the next loop iteration (store.h), so none was made. */
static void
unreachable(const char *url, uint64_t attempts)
{
    uv_loop_t loop;
    uv_timer_t t;
    struct cg_config cfg;
    struct cg_metrics m;
    cg_store *st;
    uint64_t dl = uv_hrtime() + 10000 * 1000000ull;

    cg_log_set_level(CG_LOG_ERROR);
    memset(&cfg, 0, sizeof cfg);
    memset(&m, 0, sizeof m);
    cfg.redis_url = (char *)url;
    cg_test_redis_url(&cfg, url);
    cfg.redis_timeout_ms = 500;
    cfg.redis_reconnect_max_ms = 200;
    cr_assert(eq(int, uv_loop_init(&loop), 0));
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_tick, 5, 5);
    cr_assert(eq(int, cg_store_create(&loop, &cfg, &m, &st), 0));
    while (m.redis_errors < attempts && uv_hrtime() < dl) {
        uv_run(&loop, UV_RUN_ONCE);
        cr_assert(eq(int, cg_store_ready(st), 0), "ready with no server");
    }
    if (attempts > 0)
        cr_assert(m.redis_errors >= attempts, "%llu failed attempts, %llu wanted",
                  (unsigned long long)m.redis_errors, (unsigned long long)attempts);
    else
        cr_assert(eq(u64, m.redis_errors, 0), "no attempt before the loop ran");
    cr_assert(eq(u64, m.redis_reconnects, 0), "never up, so never a reconnect");
    cg_store_close(st, NULL, NULL);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(eq(int, uv_loop_close(&loop), 0));
    cg_test_redis_url_done(&cfg);
}

Test(store_down, refused_tcp_is_retried_with_backoff)
{
    unreachable("redis://127.0.0.1:1/0", 4);
}

Test(store_down, missing_unix_socket_is_retried_with_backoff)
{
    unreachable("unix:///nonexistent/chatgate.sock", 4);
}

Test(store_down, host_name_is_resolved_off_the_loop_and_close_waits_for_it)
{
    unreachable("redis://localhost:1/0", 3);
    unreachable("redis://localhost:1/0", 0);       /* closed before the first attempt */
}

/* cg_store_defer(): never inside the call, once on the next turn, in order;
 * what is still due hears CG_E_CLOSED from cg_store_close(); once closing,
 * refused with no callback. No Redis needed. */
struct later {
    struct cg_store_defer d;          /* first: on_later converts back */
    int                   called, err, seq;
};

static int later_seq, later_in_call;

static void
on_later(struct cg_store_defer *d, int err)
{
    struct later *l = (struct later *)d;

    cr_assert(eq(int, later_in_call, 0), "deferred callback ran inside the call");
    l->called++;
    l->err = err;
    l->seq = ++later_seq;
}

Test(store_down, deferred_completions_run_on_the_next_turn_and_hear_close)
{
    uv_loop_t loop;
    struct cg_config cfg;
    struct cg_metrics m;
    cg_store *st;
    struct later a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };

    cg_log_set_level(CG_LOG_ERROR);
    memset(&cfg, 0, sizeof cfg);
    memset(&m, 0, sizeof m);
    cfg.redis_url = "unix:///nonexistent/chatgate.sock";
    cg_test_redis_url(&cfg, cfg.redis_url);
    cr_assert(eq(int, uv_loop_init(&loop), 0));
    cr_assert(eq(int, cg_store_create(&loop, &cfg, &m, &st), 0));
    later_seq = 0;
    later_in_call = 1;
    cr_assert(eq(int, cg_store_defer(st, &a.d, on_later), 0));
    cr_assert(eq(int, cg_store_defer(st, &b.d, on_later), 0));
    later_in_call = 0;
    cr_assert(eq(int, a.called + b.called, 0));
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert(eq(int, a.called, 1));
    cr_assert(eq(int, b.called, 1));
    cr_assert(eq(int, a.err, 0));
    cr_assert(eq(int, b.err, 0));
    cr_assert(lt(int, a.seq, b.seq), "in the order deferred");

    cr_assert(eq(int, cg_store_defer(st, &c.d, on_later), 0));
    cg_store_close(st, NULL, NULL);
    cr_assert(eq(int, c.called, 1), "still due: answered by the close");
    cr_assert(eq(int, c.err, CG_E_CLOSED));
    cr_assert(eq(int, cg_store_defer(st, &d.d, on_later), CG_E_CLOSED));
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(eq(int, c.called, 1));
    cr_assert(eq(int, d.called, 0), "refused: never called");
    cr_assert(eq(int, a.called + b.called, 2));
    cr_assert(eq(int, uv_loop_close(&loop), 0));
    cg_test_redis_url_done(&cfg);
}

/* ---- redis_url parsing -------------------------------------------------- */

struct url_case {
    char url[64];      /* an array: parameters are copied between processes */
    int  ok;
};

ParameterizedTestParameters(store_url, parse)
{
    static struct url_case cases[] = {
        { "redis://127.0.0.1:6379/0", 1 },
        { "redis://127.0.0.1", 1 },
        { "redis://localhost:6390/15", 1 },
        { "redis://:secret@127.0.0.1:6379/2", 1 },
        { "redis://user:p%40ss@[::1]:6379/1", 1 },
        { "redis://127.0.0.1:6379/", 1 },
        { "unix:///tmp/redis.sock", 1 },
        { "unix:///tmp/redis.sock?db=4", 1 },
        { "unix://:pw@/tmp/redis.sock?db=4&password=x", 1 },
        { "redis://", 0 },
        { "redis://host:0/0", 0 },
        { "redis://host:65536", 0 },
        { "redis://host:12ab", 0 },
        { "redis://host/x", 0 },
        { "redis://[::1/0", 0 },
        { "rediss://host:6379", 0 },
        { "unix://relative.sock", 0 },
        { "unix:///tmp/s?db=x", 0 },
        { "unix:///tmp/s?what=1", 0 },
        { "redis://:bad%zz@h", 0 },
        { "127.0.0.1:6379", 0 },
        { "", 0 },
    };
    return cr_make_param_array(struct url_case, cases, sizeof cases / sizeof cases[0]);
}

/* The config parses redis_url (core/redis_url.c); what it accepts, the
 * store starts with, and a config without it is refused. */
ParameterizedTest(struct url_case *c, store_url, parse)
{
    uv_loop_t loop;
    struct cg_config cfg;
    struct cg_metrics m;
    cg_store *st = NULL;
    char why[96] = "";
    int rc;

    cg_log_set_level(CG_LOG_ERROR);
    memset(&m, 0, sizeof m);
    memset(&cfg, 0, sizeof cfg);
    cfg.redis_url = (char *)c->url;
    cfg.redis_timeout_ms = 1000;
    cfg.redis_reconnect_max_ms = 1000;
    uv_loop_init(&loop);
    rc = cg_redis_url_parse(c->url, &cfg.redis, why, sizeof why);
    if (c->ok) {
        cr_assert(eq(int, rc, 0), "%s must parse: %s", c->url, why);
        cr_assert(eq(int, cg_store_create(&loop, &cfg, &m, &st), 0));
        cr_assert(eq(int, cg_store_ready(st), 0));
        cg_store_close(st, NULL, NULL);
    } else {
        cr_assert(eq(int, rc, CG_E_INVAL), "%s must be refused", c->url);
        cr_assert(not(eq(str, why, "")), "%s: a reason", c->url);
        cr_assert(cfg.redis.host == NULL && cfg.redis.path == NULL);
        cr_assert(eq(int, cg_store_create(&loop, &cfg, &m, &st), CG_E_INVAL));
        cr_assert(st == NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(eq(int, uv_loop_close(&loop), 0));
    cg_redis_url_cleanup(&cfg.redis);
}

/* ---- batches of chat operations (store.h "Batching") --------------------- */

#define NBATCH 10

/* Submit NBATCH sends to bob without running the loop in between (one loop
 * turn), then wait for every answer. */
static void
send_burst(struct ans *a, const char *prefix)
{
    struct cg_chat_conn conn;
    struct cg_chat_caller who = { .sid = 1, .uid = 1, .name = "alice" };
    int done;

    cg_chat_conn_init(&conn, &E.cfg);
    for (int i = 0; i < NBATCH; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"msgID\":\"%s-%04d\",\"reciverId\":2,\"content\":\"%d\"}",
                 prefix, i, i);
        cr_assert(eq(int, cg_chat_send(E.chat, &conn, &who, body, strlen(body), on_done, &a[i],
                                       NULL), 0));
    }
    cr_assert(eq(sz, cg_store_inflight(E.st), NBATCH), "queued operations count as in flight");
    do {
        done = 0;
        for (int i = 0; i < NBATCH; i++)
            done += a[i].called;
        if (done < NBATCH)
            uv_run(&E.loop, UV_RUN_ONCE);
    } while (done < NBATCH);
}

static long long
evalsha_calls(void)
{
    redisReply *r = rcommand("INFO commandstats");
    const char *p;
    long long n = 0;

    cr_assert(r && r->type == REDIS_REPLY_STRING);
    if ((p = strstr(r->str, "cmdstat_evalsha:calls=")) != NULL)
        n = strtoll(p + strlen("cmdstat_evalsha:calls="), NULL, 10);
    freeReplyObject(r);
    return n;
}

static void
check_burst(struct ans *a)
{
    for (int i = 0; i < NBATCH; i++) {
        struct result r = parse_status(&a[i]);
        cr_assert(eq(int, r.code, 200));
        cr_assert(eq(i64, r.id, i + 1), "ids in submission order");
        if (i > 0)
            cr_assert(a[i].seq > a[i - 1].seq, "answered in submission order");
        free(a[i].body);
        a[i].body = NULL;
    }
}

Test(store, sends_of_one_loop_turn_go_to_redis_as_one_script_call)
{
    static struct ans a[NBATCH];

    start(one_conn);
    add_users();
    freeReplyObject(rcommand("CONFIG RESETSTAT"));
    send_burst(a, "burst");
    check_burst(a);
    cr_assert(eq(i64, evalsha_calls(), 1));
    cr_assert(eq(u64, E.m.redis_batches, 1));
    cr_assert(eq(u64, E.m.redis_batch_ops, NBATCH));
    cr_assert(eq(sz, cg_store_inflight(E.st), 0));
    /* All stored by one script run: one clock reading for the batch. */
    cr_assert(eq(i64, rint_("ZCARD %s", "{u:2}:pending", NULL), NBATCH));
    finish();
}

static void batch_of_three(struct cg_config *c) { c->redis_connections = 1; c->redis_batch_max = 3; }
static void no_batching(struct cg_config *c) { c->redis_connections = 1; c->redis_batch_max = 1; }

static void claim_msgids(struct cg_config *c) { c->msgid_unique_per_sender = 1; }

/* msgid_unique_per_sender: every send claims its msgID on the sender's
 * keys first (chat.c), so a burst is two script calls, the claims' and
 * the sends', and each msgID is recorded for its receiver. */
Test(store, with_msgid_unique_per_sender_a_send_claims_first)
{
    struct ans a[NBATCH];
    char *claimed;

    memset(a, 0, sizeof a);
    start(claim_msgids);
    add_users();
    freeReplyObject(rcommand("CONFIG RESETSTAT"));
    send_burst(a, "claim");
    check_burst(a);
    cr_assert(eq(i64, evalsha_calls(), 2));
    cr_assert(eq(u64, E.m.redis_batches, 2));
    cr_assert(eq(u64, E.m.redis_batch_ops, 2 * NBATCH));
    cr_assert(eq(i64, rint_("HLEN %s", "{u:1}:sent", NULL), NBATCH));
    claimed = rstr("HGET %s %s", "{u:1}:sent", "claim-0000");
    cr_assert(not(zero(ptr, claimed)));
    cr_assert(eq(int, strncmp(claimed, "2:", 2), 0), "claimed for bob: %s", claimed);
    free(claimed);
    finish();
}

Test(store, a_full_batch_is_sent_at_once_and_batch_max_1_sends_each_alone)
{
    static struct ans a[NBATCH];

    start(batch_of_three);
    add_users();
    freeReplyObject(rcommand("CONFIG RESETSTAT"));
    send_burst(a, "three");
    check_burst(a);
    cr_assert(eq(i64, evalsha_calls(), 4));          /* 3 + 3 + 3 + 1 */
    finish();

    memset(a, 0, sizeof a);
    start(no_batching);
    add_users();
    freeReplyObject(rcommand("CONFIG RESETSTAT"));
    send_burst(a, "alone");
    check_burst(a);
    cr_assert(eq(i64, evalsha_calls(), NBATCH));
    finish();
}

Test(store, a_fetch_after_queued_operations_runs_after_them)
{
    static struct ans s1, s2, rc;
    struct fetched f = { 0 };
    struct cg_chat_conn conn;
    struct cg_chat_caller alice = { .sid = 1, .uid = 1, .name = "alice" };
    struct cg_chat_caller bob = { .sid = 2, .uid = 2, .name = "bob" };
    static const char b1[] = "{\"msgID\":\"order-0001\",\"reciverId\":2,\"content\":\"a\"}";
    static const char b2[] = "{\"msgID\":\"order-0002\",\"reciverId\":2,\"content\":\"b\"}";
    static const char c1[] = "{\"msgID\":\"order-0001\"}";

    start(one_conn);
    add_users();
    cg_chat_conn_init(&conn, &E.cfg);
    /* One loop turn: two sends, a confirmation of the first, an init. The
     * init must see exactly what the three before it left pending. */
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &alice, b1, strlen(b1), on_done, &s1, NULL), 0));
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &alice, b2, strlen(b2), on_done, &s2, NULL), 0));
    cr_assert(eq(int, cg_chat_recive(E.chat, &bob, c1, strlen(c1), 0, on_done, &rc, NULL), 0));
    cr_assert(eq(int, cg_chat_fetch(E.chat, &bob, 0, 0, 10, on_fetch, &f, NULL), 0));
    RUN_UNTIL(f.called && s1.called && s2.called && rc.called, 5000);
    cr_assert(eq(int, parse_status(&s1).code, 200));
    cr_assert(eq(int, parse_status(&s2).code, 200));
    cr_assert(eq(int, parse_status(&rc).code, 200));
    cr_assert(s1.seq < s2.seq && s2.seq < rc.seq);
    cr_assert(eq(int, f.err, 0));
    cr_assert(eq(sz, f.n, 1), "init saw the confirmation that was submitted before it");
    cr_assert(eq(u64, f.id[0], 2));
    fetched_free(&f);
    free(s1.body);
    free(s2.body);
    free(rc.body);
    s1.body = s2.body = rc.body = NULL;
    finish();
}

Test(store, one_failing_operation_does_not_fail_its_batch)
{
    static struct ans ok1, bad, ok2;
    struct cg_chat_conn conn;
    struct cg_chat_caller alice = { .sid = 1, .uid = 1, .name = "alice" };
    static const char b1[] = "{\"msgID\":\"fail-0001\",\"reciverId\":2,\"content\":\"a\"}";
    static const char bx[] = "{\"msgID\":\"fail-0002\",\"reciverId\":3,\"content\":\"b\"}";
    static const char b2[] = "{\"msgID\":\"fail-0003\",\"reciverId\":2,\"content\":\"c\"}";

    start(one_conn);
    add_users();
    /* carol's pending inbox is a string: her send raises WRONGTYPE inside
     * the script. */
    freeReplyObject(rcommand("SET {u:3}:pending oops"));
    cg_chat_conn_init(&conn, &E.cfg);
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &alice, b1, strlen(b1), on_done, &ok1, NULL), 0));
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &alice, bx, strlen(bx), on_done, &bad, NULL), 0));
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &alice, b2, strlen(b2), on_done, &ok2, NULL), 0));
    RUN_UNTIL(ok1.called && bad.called && ok2.called, 5000);
    cr_assert(eq(int, parse_status(&ok1).code, 200));
    cr_assert(eq(int, parse_status(&bad).code, 503));
    cr_assert(eq(int, parse_status(&ok2).code, 200));
    cr_assert(eq(u64, E.m.redis_batches, 1));
    cr_assert(eq(i64, rint_("ZCARD %s", "{u:2}:pending", NULL), 2));
    free(ok1.body);
    free(bad.body);
    free(ok2.body);
    ok1.body = bad.body = ok2.body = NULL;
    finish();
}

Test(store, closing_with_queued_operations_answers_each_closed)
{
    static struct ans a[NBATCH];
    struct cg_chat_conn conn;
    struct cg_chat_caller who = { .sid = 1, .uid = 1, .name = "alice" };

    start(one_conn);
    add_users();
    cg_chat_conn_init(&conn, &E.cfg);
    for (int i = 0; i < 3; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"msgID\":\"queued-%04d\",\"reciverId\":2,\"content\":\"x\"}", i);
        cr_assert(eq(int, cg_chat_send(E.chat, &conn, &who, body, strlen(body), on_done, &a[i],
                                       NULL), 0));
    }
    /* Nothing has been written yet: the store closes under them. */
    cg_store_close(E.st, on_closed, NULL);
    E.st = NULL;
    for (int i = 0; i < 3; i++) {
        cr_assert(eq(int, a[i].called, 1));
        cr_assert(eq(int, a[i].err, CG_E_CLOSED));
    }
    RUN_UNTIL(E.closed != 0, 5000);
    cr_assert(E.closed != 0);
    /* Nothing was stored. */
    cr_assert(eq(i64, rint_("EXISTS %s", "{u:2}:pending", NULL), 0));
    finish();
}

Test(store, no_delivered_notice_unless_the_sender_asked_for_one)
{
    static struct ans s1;
    struct cg_chat_conn conn;
    struct cg_chat_caller quiet = { .sid = 1, .uid = 1, .name = "alice" };   /* want_delivered 0 */
    static const char b1[] = "{\"msgID\":\"quiet-0001\",\"reciverId\":2,\"content\":\"a\"}";
    char *e;

    start(NULL);
    add_users();
    subscribe_wait(1);                       /* alice's channel is listened to */
    cg_chat_conn_init(&conn, &E.cfg);
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &quiet, b1, strlen(b1), on_done, &s1, NULL), 0));
    RUN_UNTIL(s1.called, 5000);
    cr_assert(eq(int, parse_status(&s1).code, 200));
    free(s1.body);
    s1.body = NULL;
    e = rstr("HGET %s %s", "{u:2}:msg", "m:quiet-0001");
    cr_assert(e != NULL && e[strlen(e) - 1] == '0', "no notice flag: %s", e);
    free(e);

    freeReplyObject(rcommand("CONFIG RESETSTAT"));
    cr_assert(eq(int, do_recive(2, "bob", "quiet-0001", 0).code, 200));
    barrier(1);
    cr_assert(eq(sz, count_pushes(1, "D"), 0), "nothing published to alice");
    {
        redisReply *r = rcommand("INFO commandstats");
        cr_assert(r && r->type == REDIS_REPLY_STRING);
        /* The barrier's own PUBLISH is the only one. */
        cr_assert(strstr(r->str, "cmdstat_publish:calls=1,") != NULL, "one PUBLISH: %s", r->str);
        freeReplyObject(r);
    }
    /* And a message that asked for one gets it (send_msg asks). */
    cr_assert(eq(int, send_msg(1, "alice", 2, "loud-0001", "b").code, 200));
    cr_assert(eq(int, do_recive(2, "bob", "loud-0001", 0).code, 200));
    RUN_UNTIL(count_pushes(1, "D") == 1, 5000);
    cr_assert(eq(sz, count_pushes(1, "D"), 1));
    finish();
}
