/* test_session.c - STOMP sessions (gateway/session/session.c and session_*.c,
 * subs.c, registry.c) driven through the public API by a fake transport, on
 * a real uv loop, without Redis or lws.
 *
 * The server is built by hand: the config defaults (cg_config_init), a
 * registry with no store (attach completes at once), and the real chat
 * module on a store that never connects (sends are refused 503, answered
 * on the next loop turn). The asynchronous calls a
 * session makes - the token check, chat send/recive and fetch - are
 * wrapped by the linker (-Wl,--wrap=...; see CMakeLists.txt): in HOLD mode
 * the wrapper records the request and the test answers it later through
 * the very callback the session passed, in any order; in REAL mode the
 * call goes to chat.c. Frames the session writes are popped like a
 * transport would and parsed back with libstomp; a long-link session's
 * packets (at the end) with liblonglink. */
#include "fmacros.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <uv.h>

#include "chat/auth.h"
#include "chat/chat.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "longlink/longlink.h"
#include "server/server.h"
#include "session/registry.h"
#include "session/session.h"
#include "config_test.h"
#include "session_test.h"
#include "stomp/stomp.h"
#include "store/store.h"

#define TOKEN  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"   /* 43: well-formed */
#define TOKEN2 "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static uv_loop_t loop;
static struct cg_config cfg;
static struct cg_server srv;
static int dummy_auth;           /* srv.auth points here; the wrap never reads it */
/* The real chat module's store: it never connects (srv.store stays NULL, so
 * the registry attaches at once); chat answers what it refuses on its loop. */
static struct cg_config store_cfg;
static struct cg_metrics store_metrics;
static cg_store *chat_store;

static const struct cg_principal alice = { .uid = 7, .name = "alice", .token_hash = HASH_A };

/* ------------------------------------------------------------------------ */
/* The wrapped asynchronous calls                                            */
/* ------------------------------------------------------------------------ */

enum { MODE_REAL = 0, MODE_HOLD, MODE_NOMEM };

struct held {
    char             kind;       /* 'S' send, 'R' recive, 'F' fetch */
    int              answered;
    uint64_t         sid;
    void            *ticket, *data;
    cg_chat_done_cb  done;
    cg_chat_fetch_cb fetch_cb;
    uint64_t         by_id, after_id;
    size_t           limit;
    int              sync;
    char             body[64];
};

static struct {
    int          mode;
    struct held *v;
    size_t       n, cap;
} chat_w;

static struct {
    cg_auth_cb cb;
    void      *data;
    int        calls;
    int        rc;
    char       token[64];
    int        forgets;
    char       forgot[CG_TOKEN_HASH_LEN + 1];
} auth_w;

int __wrap_cg_auth_check_token(cg_auth *a, const char *tok, size_t len,
                               cg_auth_cb cb, void *data);
void __wrap_cg_auth_forget(cg_auth *a, const char *token_hash);
int __real_cg_chat_send(cg_chat *chat, struct cg_chat_conn *conn,
                        const struct cg_chat_caller *who, const char *body, size_t len,
                        cg_chat_done_cb done, void *ticket, void *data);
int __wrap_cg_chat_send(cg_chat *chat, struct cg_chat_conn *conn,
                        const struct cg_chat_caller *who, const char *body, size_t len,
                        cg_chat_done_cb done, void *ticket, void *data);
int __real_cg_chat_recive(cg_chat *chat, const struct cg_chat_caller *who,
                          const char *body, size_t len, uint64_t by_id,
                          cg_chat_done_cb done, void *ticket, void *data);
int __wrap_cg_chat_recive(cg_chat *chat, const struct cg_chat_caller *who,
                          const char *body, size_t len, uint64_t by_id,
                          cg_chat_done_cb done, void *ticket, void *data);
int __real_cg_chat_fetch(cg_chat *chat, const struct cg_chat_caller *who, int sync,
                         uint64_t after_id, size_t limit, cg_chat_fetch_cb cb,
                         void *ticket, void *data);
int __wrap_cg_chat_fetch(cg_chat *chat, const struct cg_chat_caller *who, int sync,
                         uint64_t after_id, size_t limit, cg_chat_fetch_cb cb,
                         void *ticket, void *data);

int
__wrap_cg_auth_check_token(cg_auth *a, const char *tok, size_t len, cg_auth_cb cb,
                           void *data)
{
    (void)a;
    auth_w.calls++;
    if (auth_w.rc < 0)
        return auth_w.rc;
    snprintf(auth_w.token, sizeof auth_w.token, "%.*s", (int)len, tok);
    auth_w.cb = cb;
    auth_w.data = data;
    return 0;
}

void
__wrap_cg_auth_forget(cg_auth *a, const char *token_hash)
{
    (void)a;
    auth_w.forgets++;
    snprintf(auth_w.forgot, sizeof auth_w.forgot, "%s", token_hash);
}

static struct held *
held_push(char kind, uint64_t sid, void *ticket, void *data)
{
    struct held *h;

    if (chat_w.n == chat_w.cap) {
        chat_w.cap = chat_w.cap ? chat_w.cap * 2 : 64;
        chat_w.v = realloc(chat_w.v, chat_w.cap * sizeof *chat_w.v);
        cr_assert(not(eq(ptr, chat_w.v, NULL)));
    }
    h = &chat_w.v[chat_w.n++];
    memset(h, 0, sizeof *h);
    h->kind = kind;
    h->sid = sid;
    h->ticket = ticket;
    h->data = data;
    return h;
}

int
__wrap_cg_chat_send(cg_chat *chat, struct cg_chat_conn *conn,
                    const struct cg_chat_caller *who, const char *body, size_t len,
                    cg_chat_done_cb done, void *ticket, void *data)
{
    struct held *h;

    if (chat_w.mode == MODE_REAL)
        return __real_cg_chat_send(chat, conn, who, body, len, done, ticket, data);
    if (chat_w.mode == MODE_NOMEM)
        return CG_E_NOMEM;
    h = held_push('S', who->sid, ticket, data);
    h->done = done;
    snprintf(h->body, sizeof h->body, "%.*s", (int)len, body);
    return 0;
}

int
__wrap_cg_chat_recive(cg_chat *chat, const struct cg_chat_caller *who,
                      const char *body, size_t len, uint64_t by_id,
                      cg_chat_done_cb done, void *ticket, void *data)
{
    struct held *h;

    if (chat_w.mode == MODE_REAL)
        return __real_cg_chat_recive(chat, who, body, len, by_id, done, ticket, data);
    if (chat_w.mode == MODE_NOMEM)
        return CG_E_NOMEM;
    h = held_push('R', who->sid, ticket, data);
    h->done = done;
    h->by_id = by_id;
    snprintf(h->body, sizeof h->body, "%.*s", (int)len, body);
    return 0;
}

int
__wrap_cg_chat_fetch(cg_chat *chat, const struct cg_chat_caller *who, int sync,
                     uint64_t after_id, size_t limit, cg_chat_fetch_cb cb,
                     void *ticket, void *data)
{
    struct held *h;

    if (chat_w.mode == MODE_REAL)
        return __real_cg_chat_fetch(chat, who, sync, after_id, limit, cb, ticket, data);
    if (chat_w.mode == MODE_NOMEM)
        return CG_E_NOMEM;
    h = held_push('F', who->sid, ticket, data);
    h->fetch_cb = cb;
    h->sync = sync;
    h->after_id = after_id;
    h->limit = limit;
    return 0;
}

/* Answer held request i (send/recive) with a status body on topic. */
static void
answer(size_t i, enum cg_chat_topic topic, const char *json)
{
    struct held *h = &chat_w.v[i];
    struct cg_buf *b = cg_buf_create(json, strlen(json));

    cr_assert(eq(int, h->answered, 0));
    h->answered = 1;
    h->done(h->sid, h->ticket, 0, topic, b, h->data);   /* takes b */
}

/* Answer held fetch i; position is the user's newest id as the store
 * would report it. */
static void
answer_fetch_at(size_t i, const struct cg_chat_item *items, size_t n, int more,
                uint64_t position)
{
    struct held *h = &chat_w.v[i];

    cr_assert(eq(int, h->answered, 0));
    cr_assert(eq(chr, h->kind, 'F'));
    h->answered = 1;
    h->fetch_cb(h->sid, h->ticket, 0, items, n, more, position, h->data);
}

/* Answer held fetch i, the user's stream ending at its last item. */
static void
answer_fetch(size_t i, const struct cg_chat_item *items, size_t n, int more)
{
    answer_fetch_at(i, items, n, more, n > 0 ? items[n - 1].id : 0);
}

/* Answer held fetch i with a store failure. */
static void
answer_fetch_err(size_t i, int err)
{
    struct held *h = &chat_w.v[i];

    cr_assert(eq(int, h->answered, 0));
    cr_assert(eq(chr, h->kind, 'F'));
    h->answered = 1;
    h->fetch_cb(h->sid, h->ticket, err, NULL, 0, 0, 0, h->data);
}

static void
auth_answer(int err, const struct cg_principal *who)
{
    cg_auth_cb cb = auth_w.cb;

    cr_assert(not(eq(ptr, (void *)cb, NULL)), "no token check in flight");
    auth_w.cb = NULL;
    cb(err, who, NULL, auth_w.data);
}

/* ------------------------------------------------------------------------ */
/* The fake transport                                                        */
/* ------------------------------------------------------------------------ */

struct tframe {
    enum stomp_command cmd;
    size_t             nh;
    char              *name[32];
    char              *value[32];
    char              *body;
    size_t             blen;
};

struct fake {
    cg_session         *s;
    int                 want_write, paused, pause_calls;
    int                 ops_closed, close_code, closed, store;
    char                why[128];
    struct cg_wbuf      out;
    struct stomp_parser p;
    struct tframe      *frames;
    size_t              nframes, cap, eols;
    size_t              count[STOMP_CMD_COUNT];
};

#define MAX_FAKES 512
static struct fake *fakes[MAX_FAKES];
static size_t nfakes;

static void
f_want_write(void *t)
{
    ((struct fake *)t)->want_write++;
}

static void
f_pause_read(void *t, int paused)
{
    struct fake *f = t;

    f->paused = paused;
    f->pause_calls++;
}

static void
f_close(void *t, int code, const char *why)
{
    struct fake *f = t;

    /* Deferred, like every transport: the test calls on_closed later. */
    f->ops_closed++;
    f->close_code = code;
    snprintf(f->why, sizeof f->why, "%s", why);
}

static const char *
f_peer(void *t)
{
    (void)t;
    return "127.0.0.1:5555";
}

static const struct cg_transport_ops fake_ops = {
    .name = "fake", .kind = CG_TR_WS, .want_write = f_want_write,
    .pause_read = f_pause_read, .close = f_close, .peer = f_peer,
};

static struct fake *
new_fake_open(const char *token, int ws_version)
{
    struct cg_session_open open = { .token = token, .token_len = token ? strlen(token) : 0,
                                    .ws_version = ws_version };
    struct stomp_limits lim = { 1 << 24, 64, 1 << 16, 1 << 24 };
    struct fake *f;

    cr_assert(lt(sz, nfakes, (size_t)MAX_FAKES));
    f = calloc(1, sizeof *f);
    cr_assert(not(eq(ptr, f, NULL)));
    cg_wbuf_init(&f->out, 0);
    stomp_parser_init(&f->p, &lim);
    f->store = 1;
    f->s = cg_session_create(&srv, &fake_ops, f, &open);
    cr_assert(not(eq(ptr, f->s, NULL)));
    fakes[nfakes++] = f;
    return f;
}

static struct fake *
new_fake(void)
{
    return new_fake_open(NULL, 0);
}

static void
frames_clear(struct fake *f)
{
    size_t i, k;

    for (i = 0; i < f->nframes; i++) {
        for (k = 0; k < f->frames[i].nh; k++) {
            free(f->frames[i].name[k]);
            free(f->frames[i].value[k]);
        }
        free(f->frames[i].body);
    }
    f->nframes = 0;
}

static char *
dupn(const char *p, size_t n)
{
    char *d = malloc(n + 1);

    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* Parse what the session wrote so far. */
static void
parse_out(struct fake *f)
{
    struct stomp_header hdrs[64];
    struct stomp_frame fr = { .headers = hdrs };
    size_t off = 0, k;
    ssize_t n;

    while (off < f->out.len) {
        n = stomp_parse(&f->p, cg_wbuf_data(&f->out) + off, f->out.len - off, &fr);
        cr_assert(ge(i64, (int64_t)n, 0), "session wrote a bad frame: %s",
                  stomp_strerror((int)n));
        if (n == 0)
            break;
        off += (size_t)n;
        if (fr.command == STOMP_CMD_HEARTBEAT) {
            f->eols += (size_t)n;
            continue;
        }
        f->count[fr.command]++;
        if (!f->store)
            continue;
        if (f->nframes == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 16;
            f->frames = realloc(f->frames, f->cap * sizeof *f->frames);
        }
        {
            struct tframe *t = &f->frames[f->nframes++];

            t->cmd = fr.command;
            t->nh = fr.nheaders < 32 ? fr.nheaders : 32;
            for (k = 0; k < t->nh; k++) {
                t->name[k] = dupn(hdrs[k].name.ptr, hdrs[k].name.len);
                t->value[k] = dupn(hdrs[k].value.ptr, hdrs[k].value.len);
            }
            t->body = dupn(fr.body.ptr, fr.body.len);
            t->blen = fr.body.len;
        }
    }
    if (off > 0) {
        memmove(cg_wbuf_data(&f->out), cg_wbuf_data(&f->out) + off, f->out.len - off);
        f->out.len -= off;
    }
}

/* What the transport does when it may write: pop until dry. */
static void
pump(struct fake *f)
{
    int n;

    if (f->closed)
        return;
    while ((n = cg_session_pop_frame(f->s, &f->out)) > 0)
        ;
    cr_assert(eq(int, n, 0));
    parse_out(f);
}

/* The transport's connection goes away. */
static void
transport_closed(struct fake *f)
{
    if (!f->closed) {
        f->closed = 1;
        cg_session_on_closed(f->s);
    }
}

static int
wants_close(struct fake *f, int *code)
{
    const char *why;
    int c = 0, r = cg_session_wants_close(f->s, &c, &why);

    if (code)
        *code = c;
    return r;
}

static const char *
th(const struct tframe *t, const char *name)
{
    size_t k;

    for (k = 0; k < t->nh; k++)
        if (strcmp(t->name[k], name) == 0)
            return t->value[k];
    return NULL;
}

static struct tframe *
frame_at(struct fake *f, size_t i)
{
    cr_assert(lt(sz, i, f->nframes), "expected at least %zu frames, got %zu", i + 1,
              f->nframes);
    return &f->frames[i];
}

static void
feed(struct fake *f, const void *p, size_t n)
{
    (void)cg_session_on_bytes(f->s, p, n);
}

#define FEED(f, lit) feed((f), (lit), sizeof(lit) - 1)

/* Format one frame (the NUL terminator is added) and feed it. */
static void sendf(struct fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sendf(struct fake *f, const char *fmt, ...)
{
    static char buf[1 << 17];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    cr_assert(lt(int, n, (int)sizeof buf - 1));
    buf[n] = '\0';
    feed(f, buf, (size_t)n + 1);
}

static void
expect_error(struct fake *f, const char *message, int close_code)
{
    struct tframe *t;
    int code = 0;

    pump(f);
    cr_assert(ge(sz, f->nframes, 1));
    t = &f->frames[f->nframes - 1];
    cr_assert(eq(int, t->cmd, STOMP_CMD_ERROR), "last frame is %s, not ERROR",
              stomp_command_name(t->cmd));
    cr_assert(not(eq(ptr, (char *)th(t, "message"), NULL)));
    cr_assert(eq(str, (char *)th(t, "message"), (char *)message));
    cr_assert(eq(int, wants_close(f, &code), 1));
    if (close_code)
        cr_assert(eq(int, code, close_code));
}

/* CONNECT with a passcode token, answer the token check as alice. */
static struct fake *
connect_as(const char *accept, const char *hb)
{
    struct fake *f = new_fake();
    struct tframe *t;
    const char *v;

    sendf(f, "CONNECT\naccept-version:%s\nhost:x\nheart-beat:%s\nlogin:x\npasscode:" TOKEN "\n\n",
          accept, hb);
    auth_answer(0, &alice);
    pump(f);
    t = frame_at(f, 0);
    cr_assert(eq(int, t->cmd, STOMP_CMD_CONNECTED), "got %s: %s",
              stomp_command_name(t->cmd), th(t, "message") ? th(t, "message") : "");
    v = th(t, "version");
    stomp_parser_set_version(&f->p, strcmp(v, "1.2") == 0 ? STOMP_V1_2
                                     : strcmp(v, "1.1") == 0 ? STOMP_V1_1 : STOMP_V1_0);
    frames_clear(f);
    return f;
}

static struct fake *
connect12(void)
{
    return connect_as("1.2", "0,0");
}

static void
subscribe(struct fake *f, const char *id, const char *dest, const char *ack)
{
    sendf(f, "SUBSCRIBE\nid:%s\ndestination:%s\nack:%s\n\n", id, dest, ack);
}

/* Run the loop for ms of loop time. The test's timer stops the loop at
 * once: with UV_RUN_ONCE, an iteration whose timers fired on entry (after
 * the machine stalled) would go on to block in poll until the next
 * deadline of some session, which may be far later (a closing session's
 * 30 s). */
static int timer_fired;

static void
on_test_timer(uv_timer_t *t)
{
    timer_fired = 1;
    uv_stop(t->loop);
}

static void
run_for(uint64_t ms)
{
    uv_timer_t t;

    uv_timer_init(&loop, &t);
    timer_fired = 0;
    uv_timer_start(&t, on_test_timer, ms, 0);
    while (!timer_fired)
        uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* Loop milliseconds since t0, on the clock of every session deadline
 * (uv_now). A test that checks that something has NOT happened yet after
 * run_for(n) accepts it when a stalled machine let the deadline pass
 * meanwhile: it then checks "not before the deadline" rather than "not
 * within n ms of wall time". */
static uint64_t
loop_since(uint64_t t0)
{
    return uv_now(&loop) - t0;
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                   */
/* ------------------------------------------------------------------------ */

static void
setup(void)
{
    /* Quiet by default; CG_TEST_LOG=debug shows every session log line. */
    cg_log_set_level(getenv("CG_TEST_LOG") && strcmp(getenv("CG_TEST_LOG"), "debug") == 0
                     ? CG_LOG_DEBUG : CG_LOG_ERROR);
    cr_assert(eq(int, uv_loop_init(&loop), 0));
    cr_assert(eq(int, cg_config_init(&cfg), 0));
    memset(&srv, 0, sizeof srv);
    srv.loop = &loop;
    srv.cfg = &cfg;
    cr_assert(eq(int, cg_registry_create(&srv, &srv.registry), 0));
    memset(&store_cfg, 0, sizeof store_cfg);
    memset(&store_metrics, 0, sizeof store_metrics);
    store_cfg.redis_url = "unix:///nonexistent/chatgate-test.sock";
    cg_test_redis_url(&store_cfg, store_cfg.redis_url);
    cr_assert(eq(int, cg_store_create(&loop, &store_cfg, &store_metrics, &chat_store), 0));
    cr_assert(eq(int, cg_chat_create(&cfg, chat_store, &srv.metrics, &srv.chat), 0));
    srv.auth = (cg_auth *)&dummy_auth;
    memset(&chat_w, 0, sizeof chat_w);
    memset(&auth_w, 0, sizeof auth_w);
    nfakes = 0;
}

static void
teardown(void)
{
    size_t i;

    cg_alloc_fail_after(0);
    for (i = 0; i < nfakes; i++) {
        transport_closed(fakes[i]);
        frames_clear(fakes[i]);
        free(fakes[i]->frames);
        cg_wbuf_cleanup(&fakes[i]->out);
        free(fakes[i]);
    }
    nfakes = 0;
    cg_store_close(chat_store, NULL, NULL);
    chat_store = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);          /* session timers close */
    cg_chat_destroy(srv.chat);
    cg_registry_destroy(srv.registry);
    cr_assert(eq(int, uv_loop_close(&loop), 0), "a handle was left open");
    cg_test_redis_url_done(&store_cfg);
    cg_config_cleanup(&cfg);
    free(chat_w.v);
    memset(&chat_w, 0, sizeof chat_w);
}

TestSuite(session, .init = setup, .fini = teardown);
TestSuite(registry, .init = setup, .fini = teardown);

/* ------------------------------------------------------------------------ */
/* CONNECT                                                                   */
/* ------------------------------------------------------------------------ */

struct version_row {
    char accept[32];          /* "" = no accept-version header */
    int  ws_version;
    char expect[8];           /* "" = refused */
};

ParameterizedTestParameters(session, connect_negotiates_the_version)
{
    static struct version_row rows[] = {
        { "",            0,  "1.0" },
        { "1.0",         0,  "1.0" },
        { "1.0,1.1",     0,  "1.1" },   /* stomp.js 2.3.3 over plain WS */
        { "1.1,1.0",     0,  "1.1" },
        { "1.2,1.1,1.0", 0,  "1.2" },
        { "1.1,1.2",     0,  "1.2" },
        { "1.2,1.1,1.0", 11, "1.1" },   /* the subprotocol fixed it */
        { "1.0,1.1",     12, "1.1" },   /* ... unless not offered */
        { "1.2,2.0",     0,  "1.2" },
        { "2.0",         0,  "" },
        { "1.3,1.9",     0,  "" },
    };

    return cr_make_param_array(struct version_row, rows, sizeof rows / sizeof rows[0]);
}

ParameterizedTest(struct version_row *row, session, connect_negotiates_the_version)
{
    struct fake *f = new_fake_open(NULL, row->ws_version);
    struct tframe *t;

    if (row->accept[0])
        sendf(f, "CONNECT\naccept-version:%s\npasscode:" TOKEN "\n\n", row->accept);
    else
        sendf(f, "CONNECT\npasscode:" TOKEN "\n\n");
    if (row->expect[0] == '\0') {
        expect_error(f, "supported versions are 1.0,1.1,1.2", 1002);
        cr_assert(eq(str, (char *)th(&f->frames[0], "version"), "1.0,1.1,1.2"));
        cr_assert(eq(int, auth_w.calls, 0));
        cr_assert(eq(u64, srv.metrics.stomp_errors, 1));
        return;
    }
    auth_answer(0, &alice);
    pump(f);
    t = frame_at(f, 0);
    cr_assert(eq(int, t->cmd, STOMP_CMD_CONNECTED));
    cr_assert(eq(str, (char *)th(t, "version"), row->expect));
    cr_assert(eq(str, (char *)th(t, "server"), "chatgate/" CG_VERSION));
    cr_assert(eq(str, (char *)th(t, "user-name"), "alice"));
    cr_assert(not(eq(ptr, (char *)th(t, "session"), NULL)));
    cr_assert(eq(u64, strtoull(th(t, "session"), NULL, 10), cg_session_id(f->s)));
    cr_assert(eq(u64, cg_session_uid(f->s), 7));
}

struct hb_row {
    char accept[16];
    char client[24];
    long server_ms;
    char expect[24];
};

ParameterizedTestParameters(session, connected_announces_the_server_heart_beat)
{
    static struct hb_row rows[] = {
        { "1.2", "10000,10000", 10000, "10000,10000" },
        { "1.2", "0,0",         10000, "10000,10000" },
        { "1.1", "5000,5000",   0,     "0,0" },
        { "1.0", "5000,5000",   10000, "0,0" },    /* no heart-beats in 1.0 */
    };

    return cr_make_param_array(struct hb_row, rows, sizeof rows / sizeof rows[0]);
}

ParameterizedTest(struct hb_row *row, session, connected_announces_the_server_heart_beat)
{
    struct fake *f = new_fake();
    struct tframe *t;

    cfg.heartbeat_ms = row->server_ms;
    sendf(f, "CONNECT\naccept-version:%s\nheart-beat:%s\npasscode:" TOKEN "\n\n",
          row->accept, row->client);
    auth_answer(0, &alice);
    pump(f);
    t = frame_at(f, 0);
    cr_assert(eq(int, t->cmd, STOMP_CMD_CONNECTED));
    cr_assert(eq(str, (char *)th(t, "heart-beat"), row->expect));
}

Test(session, silent_peer_is_closed_after_twice_the_agreed_interval)
{
    struct fake *f;
    uint64_t t0 = uv_now(&loop);

    cfg.heartbeat_ms = 50;
    cfg.heartbeat_max_ms = 1000;
    f = connect_as("1.2", "50,0");
    run_for(40);
    cr_assert(wants_close(f, NULL) == 0 || loop_since(t0) >= 100,   /* < 2 x 50 ms */
              "closed after %llu ms", (unsigned long long)loop_since(t0));
    run_for(100);
    expect_error(f, "no data from the client within 100 ms (2 x heart-beat 50 ms)", 1008);
}

Test(session, client_heart_beat_above_heartbeat_max_ms_is_clamped)
{
    struct fake *f;

    cfg.heartbeat_ms = 20;
    cfg.heartbeat_max_ms = 40;
    f = connect_as("1.2", "100000,0");     /* would allow 200 s of silence */
    run_for(120);
    pump(f);
    cr_assert(eq(int, frame_at(f, 0)->cmd, STOMP_CMD_ERROR));
    cr_assert(not(eq(ptr, strstr(th(frame_at(f, 0), "message"), "(2 x heart-beat 40 ms)"),
                     NULL)));
}

Test(session, peer_bytes_keep_the_connection_alive)
{
    struct fake *f;
    int i;
    uint64_t last = uv_now(&loop), gap = 0; /* longest silence, loop ms */

    cfg.heartbeat_ms = 250;                 /* silence allowed: 500 ms */
    cfg.heartbeat_max_ms = 1000;
    f = connect_as("1.2", "250,0");
    for (i = 0; i < 20; i++) {              /* 600 ms in all */
        run_for(30);
        if (loop_since(last) > gap)
            gap = loop_since(last);
        FEED(f, "\n");                      /* a client heart-beat */
        last = uv_now(&loop);
    }
    pump(f);
    /* Open, unless a stalled machine kept the peer silent for 500 ms. */
    cr_assert(wants_close(f, NULL) == 0 || gap >= 500, "closed; longest silence %llu ms",
              (unsigned long long)gap);
    cr_assert(f->nframes == 0 || gap >= 500, "%zu frames; longest silence %llu ms",
              f->nframes, (unsigned long long)gap);
}

Test(session, sends_eol_heart_beats_when_idle)
{
    struct fake *f;

    cfg.heartbeat_ms = 20;
    cfg.heartbeat_max_ms = 1000;
    f = connect_as("1.2", "0,20");
    run_for(30);
    cr_assert(gt(int, f->want_write, 0));
    pump(f);
    cr_assert(eq(sz, f->eols, 1));
    run_for(30);
    pump(f);
    cr_assert(eq(sz, f->eols, 2));
    cr_assert(eq(int, wants_close(f, NULL), 0));
}

Test(session, no_heart_beats_when_the_client_wants_none)
{
    struct fake *f;

    cfg.heartbeat_ms = 20;
    cfg.heartbeat_max_ms = 1000;
    f = connect_as("1.2", "0,0");
    run_for(70);
    pump(f);
    cr_assert(eq(sz, f->eols, 0));
    cr_assert(eq(int, wants_close(f, NULL), 0));
}

Test(session, invalid_heart_beat_header_is_refused)
{
    struct fake *f = new_fake();

    sendf(f, "CONNECT\naccept-version:1.2\nheart-beat:10,x\npasscode:" TOKEN "\n\n");
    expect_error(f, "invalid heart-beat header \"10,x\" (expected cx,cy)", 1002);
}

struct token_row {
    char frame[160];
    char body[48];
};

ParameterizedTestParameters(session, connect_without_a_valid_token_is_401)
{
    static struct token_row rows[] = {
        { "CONNECT\naccept-version:1.2\n\n",                   "missing token" },
        { "CONNECT\naccept-version:1.2\nlogin:a\npasscode:\n\n", "missing token" },
        { "CONNECT\naccept-version:1.2\npasscode:short\n\n",     "invalid token" },
        { "CONNECT\naccept-version:1.2\ntoken:" TOKEN "x\n\n",   "invalid token" },
    };

    return cr_make_param_array(struct token_row, rows, sizeof rows / sizeof rows[0]);
}

ParameterizedTest(struct token_row *row, session, connect_without_a_valid_token_is_401)
{
    struct fake *f = new_fake();

    sendf(f, "%s", row->frame);
    expect_error(f, "401 unauthorized", 1008);
    cr_assert(eq(str, frame_at(f, 0)->body, row->body));
    cr_assert(eq(u64, srv.metrics.auth_failures, 1));
    cr_assert(eq(int, auth_w.calls, 0));
}

Test(session, token_the_store_rejects_is_401)
{
    struct fake *f = new_fake();

    FEED(f, "CONNECT\naccept-version:1.2\ntoken:" TOKEN "\n\n\0");
    cr_assert(eq(int, auth_w.calls, 1));
    cr_assert(eq(str, auth_w.token, TOKEN));
    pump(f);
    cr_assert(eq(sz, f->nframes, 0));              /* waiting for the check */
    auth_answer(CG_E_AUTH, NULL);
    expect_error(f, "401 unauthorized", 1008);
    cr_assert(eq(str, frame_at(f, 0)->body, "invalid or expired token"));
    cr_assert(eq(u64, srv.metrics.auth_failures, 0));   /* auth.c counts these */
}

Test(session, token_known_bad_at_once_is_401)
{
    struct fake *f = new_fake();

    auth_w.rc = CG_E_AUTH;                         /* auth's cache knows it */
    FEED(f, "CONNECT\naccept-version:1.2\ntoken:" TOKEN "\n\n\0");
    expect_error(f, "401 unauthorized", 1008);
    cr_assert(eq(str, frame_at(f, 0)->body, "invalid or expired token"));
}

Test(session, token_check_failure_is_503)
{
    struct fake *f = new_fake();

    FEED(f, "CONNECT\naccept-version:1.2\ntoken:" TOKEN "\n\n\0");
    auth_answer(CG_E_STORE, NULL);
    expect_error(f, "503 service unavailable", 1011);
    cr_assert(eq(u64, srv.metrics.auth_failures, 0));
}

Test(session, handshake_token_wins_over_connect_headers)
{
    struct fake *f = new_fake_open(TOKEN2, 0);

    FEED(f, "CONNECT\naccept-version:1.2\npasscode:" TOKEN "\n\n\0");
    cr_assert(eq(str, auth_w.token, TOKEN2));
    auth_answer(0, &alice);
    pump(f);
    cr_assert(eq(int, frame_at(f, 0)->cmd, STOMP_CMD_CONNECTED));
}

Test(session, stomp_command_connects_too)
{
    struct fake *f = new_fake();

    FEED(f, "STOMP\naccept-version:1.2\nhost:x\npasscode:" TOKEN "\n\n\0");
    auth_answer(0, &alice);
    pump(f);
    cr_assert(eq(int, frame_at(f, 0)->cmd, STOMP_CMD_CONNECTED));
}

Test(session, late_token_answer_after_close_is_ignored)
{
    struct fake *f = new_fake();

    FEED(f, "CONNECT\naccept-version:1.2\npasscode:" TOKEN "\n\n\0");
    transport_closed(f);
    auth_answer(0, &alice);                   /* finds no session: dropped */
    cr_assert(eq(sz, cg_registry_user_sessions(srv.registry, 7), 0));
}

Test(session, frames_pipelined_after_connect_wait_for_connected)
{
    struct fake *f = new_fake();

    FEED(f, "CONNECT\naccept-version:1.2\npasscode:" TOKEN "\n\n\0"
            "SUBSCRIBE\nid:0\ndestination:/user/queue/status\n\n\0"
            "SEND\ndestination:/x\nreceipt:r1\n\n\0");
    cr_assert(eq(int, f->paused, 1));
    pump(f);
    cr_assert(eq(sz, f->nframes, 0));
    auth_answer(0, &alice);
    uv_run(&loop, UV_RUN_NOWAIT);             /* parsing resumes from the timer */
    pump(f);
    cr_assert(eq(sz, f->nframes, 3));
    cr_assert(eq(int, f->frames[0].cmd, STOMP_CMD_CONNECTED));
    cr_assert(eq(int, f->frames[1].cmd, STOMP_CMD_MESSAGE));
    cr_assert(eq(str, (char *)th(&f->frames[1], "destination"), "/user/queue/status"));
    cr_assert(eq(int, f->frames[2].cmd, STOMP_CMD_RECEIPT));
    cr_assert(eq(int, f->paused, 0));
}

/* ------------------------------------------------------------------------ */
/* The dispatch table                                                        */
/* ------------------------------------------------------------------------ */

struct rule_row {
    char accept[8];           /* "" = frame sent before CONNECT */
    char frame[128];
    char message[96];
};

ParameterizedTestParameters(session, table_rules_refuse_with_one_error)
{
    static struct rule_row rows[] = {
        { "", "SEND\ndestination:/x\n\n", "expected CONNECT or STOMP, got SEND" },
        { "", "SUBSCRIBE\nid:1\ndestination:/user/queue/status\n\n",
          "expected CONNECT or STOMP, got SUBSCRIBE" },
        { "", "DISCONNECT\n\n", "expected CONNECT or STOMP, got DISCONNECT" },
        { "", "MESSAGE\n\n", "MESSAGE is a server frame" },
        { "1.2", "CONNECT\naccept-version:1.2\n\n", "CONNECT not allowed while CONNECTED" },
        { "1.2", "CONNECTED\n\n", "CONNECTED is a server frame" },
        { "1.2", "RECEIPT\nreceipt-id:1\n\n", "RECEIPT is a server frame" },
        { "1.2", "ERROR\n\n", "ERROR is a server frame" },
        { "1.2", "SEND\n\nbody", "missing header 'destination' in SEND" },
        { "1.2", "SUBSCRIBE\nid:1\n\n", "missing header 'destination' in SUBSCRIBE" },
        { "1.2", "SUBSCRIBE\ndestination:/user/queue/status\n\n",
          "missing header 'id' in SUBSCRIBE" },
        { "1.2", "UNSUBSCRIBE\n\n", "missing header 'id' in UNSUBSCRIBE" },
        { "1.0", "UNSUBSCRIBE\n\n", "missing header 'id' in UNSUBSCRIBE" },
        { "1.2", "ACK\nmessage-id:1\n\n", "missing header 'id' in ACK" },
        { "1.1", "ACK\nmessage-id:1\n\n", "missing header 'subscription' in ACK" },
        { "1.0", "ACK\n\n", "missing header 'message-id' in ACK" },
        { "1.2", "NACK\n\n", "missing header 'id' in NACK" },
        { "1.2", "BEGIN\n\n", "missing header 'transaction' in BEGIN" },
        { "1.2", "COMMIT\n\n", "missing header 'transaction' in COMMIT" },
        { "1.2", "ABORT\n\n", "missing header 'transaction' in ABORT" },
        { "1.2", "SUBSCRIBE\nid:1\ndestination:/user/queue/status\nack:bogus\n\n",
          "invalid ack mode \"bogus\" (auto, client or client-individual)" },
    };

    return cr_make_param_array(struct rule_row, rows, sizeof rows / sizeof rows[0]);
}

ParameterizedTest(struct rule_row *row, session, table_rules_refuse_with_one_error)
{
    struct fake *f = row->accept[0] ? connect_as(row->accept, "0,0") : new_fake();

    sendf(f, "%s", row->frame);
    sendf(f, "SEND\ndestination:/x\nreceipt:after\n\n");   /* never processed */
    expect_error(f, row->message, 0);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(u64, srv.metrics.stomp_errors, 1));
    if (!row->accept[0])
        cr_assert(eq(str, (char *)th(&f->frames[0], "version"), "1.0,1.1,1.2"));
    else
        cr_assert(eq(ptr, (char *)th(&f->frames[0], "version"), NULL));
    cr_assert(eq(int, cg_session_on_bytes(f->s, "\n", 1), CG_E_CLOSED));
}

Test(session, error_about_a_frame_names_its_receipt)
{
    struct fake *f = connect12();

    FEED(f, "SUBSCRIBE\nid:1\ndestination:/topic/x\nreceipt:r-77\n\n\0");
    expect_error(f, "403 forbidden destination", 1008);
    cr_assert(eq(str, (char *)th(&f->frames[0], "receipt-id"), "r-77"));
    cr_assert(eq(str, f->frames[0].body, "destination \"/topic/x\" is not yours"));
}

Test(session, subscribe_without_id_is_fine_in_1_0)
{
    struct fake *f = connect_as("1.0", "0,0");

    FEED(f, "SUBSCRIBE\ndestination:/user/queue/status\nreceipt:r\n\n\0"
            "SEND\ndestination:/x\n\n\0");
    pump(f);
    cr_assert(eq(sz, f->nframes, 2));
    cr_assert(eq(int, f->frames[0].cmd, STOMP_CMD_RECEIPT));
    cr_assert(eq(str, (char *)th(&f->frames[1], "subscription"), "/user/queue/status"));
    FEED(f, "UNSUBSCRIBE\ndestination:/user/queue/status\n\n\0SEND\ndestination:/x\n\n\0");
    pump(f);
    cr_assert(eq(sz, f->nframes, 2));             /* nothing more: unsubscribed */
}

/* ------------------------------------------------------------------------ */
/* Frame limits                                                              */
/* ------------------------------------------------------------------------ */

/* A frame of exactly n bytes (NUL included): cmd, one padding header. */
static size_t
build_frame(char *buf, size_t n, const char *head, const char *tail)
{
    size_t h = strlen(head), t = strlen(tail), pad;

    /* head "x:" pad "\n" tail NUL */
    cr_assert(gt(sz, n, h + 3 + t + 1));
    pad = n - (h + 3 + t + 1);
    memcpy(buf, head, h);
    memcpy(buf + h, "x:", 2);
    memset(buf + h + 2, 'p', pad);
    buf[h + 2 + pad] = '\n';
    memcpy(buf + h + 3 + pad, tail, t);
    buf[n - 1] = '\0';
    return n;
}

Test(session, unauthenticated_frame_cap_at_and_past_the_limit)
{
    static char buf[4096];
    struct fake *f = new_fake(), *g;

    cfg.unauth_max_frame_bytes = 1024;
    cfg.max_frame_bytes = 4096;
    /* cfg is read when the session starts: recreate */
    transport_closed(f);
    f = new_fake();
    feed(f, buf, build_frame(buf, 1024, "CONNECT\naccept-version:1.2\npasscode:" TOKEN "\n", "\n"));
    cr_assert(eq(int, auth_w.calls, 1));           /* accepted at the limit */

    g = new_fake();
    feed(g, buf, build_frame(buf, 1025, "CONNECT\naccept-version:1.2\npasscode:" TOKEN "\n", "\n"));
    expect_error(g, "frame exceeds 1024 bytes before CONNECT (unauth_max_frame_bytes)", 1008);
}

Test(session, frame_cap_after_connect_at_and_past_the_limit)
{
    static char buf[8192];
    struct fake *f;

    cfg.max_frame_bytes = 4096;
    f = connect12();
    subscribe(f, "0", "/user/queue/status", "auto");
    feed(f, buf, build_frame(buf, 4096, "SEND\ndestination:/x\n", "\n"));
    pump(f);
    cr_assert(eq(sz, f->nframes, 1));              /* 404 status: accepted */
    cr_assert(eq(int, f->frames[0].cmd, STOMP_CMD_MESSAGE));
    feed(f, buf, build_frame(buf, 4097, "SEND\ndestination:/x\n", "\n"));
    expect_error(f, "frame exceeds 4096 bytes (max_frame_bytes)", 1008);
}

Test(session, too_many_headers_names_the_limit)
{
    static char buf[8192];
    struct fake *f;
    size_t n = 0;
    int i;

    cfg.max_headers = 8;
    f = connect12();
    n += (size_t)sprintf(buf, "SEND\ndestination:/x\n");
    for (i = 0; i < 8; i++)
        n += (size_t)sprintf(buf + n, "h%d:v\n", i);
    n += (size_t)sprintf(buf + n, "\n");
    feed(f, buf, n + 1);
    expect_error(f, "more than 8 headers (max_headers)", 1008);
}

/* ------------------------------------------------------------------------ */
/* Timeouts                                                                  */
/* ------------------------------------------------------------------------ */

Test(session, connect_timeout_closes_a_silent_connection)
{
    struct fake *f;

    cfg.connect_timeout_ms = 30;
    f = new_fake();
    run_for(50);
    expect_error(f, "no CONNECT within 30 ms (connect_timeout_ms)", 1008);
}

Test(session, connect_timeout_covers_a_slow_token_check)
{
    struct fake *f;

    cfg.connect_timeout_ms = 30;
    f = new_fake();
    FEED(f, "CONNECT\naccept-version:1.2\npasscode:" TOKEN "\n\n\0");
    run_for(50);
    expect_error(f, "CONNECT not completed within 30 ms (connect_timeout_ms)", 1008);
    auth_answer(0, &alice);                     /* too late: ignored */
    pump(f);
    cr_assert(eq(sz, f->nframes, 1));
}

Test(session, unfinished_frame_times_out)
{
    struct fake *f;

    cfg.frame_timeout_ms = 30;
    f = connect12();
    FEED(f, "SEND\ndestination:/x\n");
    run_for(50);
    expect_error(f, "frame not completed within 30 ms (frame_timeout_ms)", 1008);
}

Test(session, completed_frames_reset_the_frame_timeout)
{
    struct fake *f;
    int i;
    uint64_t t0, gap = 0;                   /* longest partial frame, loop ms */

    cfg.frame_timeout_ms = 200;
    f = connect12();
    for (i = 0; i < 5; i++) {
        t0 = uv_now(&loop);
        FEED(f, "SEND\ndestination:/x\n");
        run_for(60);                        /* 5 x 60 ms > 200 ms in all */
        if (loop_since(t0) > gap)
            gap = loop_since(t0);
        FEED(f, "\n\0");
    }
    pump(f);
    /* Open, unless a stalled machine left one frame unfinished for 200 ms. */
    cr_assert(wants_close(f, NULL) == 0 || gap >= 200, "closed; longest frame %llu ms",
              (unsigned long long)gap);
}

/* ------------------------------------------------------------------------ */
/* Subscriptions                                                             */
/* ------------------------------------------------------------------------ */

struct dest_row {
    char dest[64];
};

ParameterizedTestParameters(session, own_destinations_may_be_subscribed)
{
    static struct dest_row rows[] = {
        { "/user/alice/recive" }, { "/user/ALICE/recive" }, { "/user/7/recive" },
        { "/user/queue/status" }, { "/user/queue/send/status" },
        { "/user/queue/recive/status" }, { "/user/queue/delivered" },
        { "/user/queue/init/status" },
    };

    return cr_make_param_array(struct dest_row, rows, sizeof rows / sizeof rows[0]);
}

ParameterizedTest(struct dest_row *row, session, own_destinations_may_be_subscribed)
{
    struct fake *f = connect12();

    sendf(f, "SUBSCRIBE\nid:s\ndestination:%s\nreceipt:ok\n\n", row->dest);
    pump(f);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(int, f->frames[0].cmd, STOMP_CMD_RECEIPT));
    cr_assert(eq(str, (char *)th(&f->frames[0], "receipt-id"), "ok"));
}

ParameterizedTestParameters(session, foreign_destinations_are_403)
{
    static struct dest_row rows[] = {
        { "/user/bob/recive" }, { "/user/07/recive" }, { "/user/8/recive" },
        { "/user/alice/recive/" }, { "/user/alicex/recive" }, { "/user//recive" },
        { "/topic/chat" }, { "/user/queue/other" }, { "/user/queue/status/x" },
        { "/socket/chat/send" }, { "" },
    };

    return cr_make_param_array(struct dest_row, rows, sizeof rows / sizeof rows[0]);
}

ParameterizedTest(struct dest_row *row, session, foreign_destinations_are_403)
{
    struct fake *f = connect12();

    sendf(f, "SUBSCRIBE\nid:s\ndestination:%s\n\n", row->dest);
    expect_error(f, "403 forbidden destination", 1008);
}

Test(session, subscription_limit_at_and_past_it)
{
    struct fake *f;
    int i;

    cfg.max_subscriptions = 6;
    f = connect12();
    for (i = 0; i < 6; i++)
        sendf(f, "SUBSCRIBE\nid:%d\ndestination:/user/queue/status\n\n", i);
    sendf(f, "SEND\ndestination:/x\nreceipt:r\n\n");
    pump(f);
    cr_assert(eq(sz, f->nframes, 2));            /* one status (first sub) + receipt */
    cr_assert(eq(str, (char *)th(&f->frames[0], "subscription"), "0"));
    sendf(f, "SUBSCRIBE\nid:6\ndestination:/user/queue/status\n\n");
    expect_error(f, "more than 6 subscriptions (max_subscriptions)", 1008);
}

Test(session, duplicate_subscription_id_is_an_error)
{
    struct fake *f = connect12();

    subscribe(f, "a", "/user/queue/status", "auto");
    subscribe(f, "a", "/user/queue/send/status", "auto");
    expect_error(f, "duplicate subscription id \"a\"", 1002);
}

Test(session, unsubscribe_of_an_unknown_id_is_ignored)
{
    struct fake *f = connect12();

    FEED(f, "UNSUBSCRIBE\nid:nope\nreceipt:r\n\n\0");
    pump(f);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(int, f->frames[0].cmd, STOMP_CMD_RECEIPT));
    cr_assert(eq(int, wants_close(f, NULL), 0));
}

Test(session, unsubscribe_stops_queued_and_future_messages)
{
    struct fake *f = connect12();

    subscribe(f, "st", "/user/queue/status", "auto");
    FEED(f, "SEND\ndestination:/x\n\n\0UNSUBSCRIBE\nid:st\n\n\0SEND\ndestination:/y\n\n\0");
    pump(f);
    cr_assert(eq(sz, f->nframes, 0));            /* queued one was dropped at pop */
    cr_assert(eq(sz, cg_session_queued_bytes(f->s), 0));
}

/* ------------------------------------------------------------------------ */
/* SEND, ordering, RECEIPTs                                                  */
/* ------------------------------------------------------------------------ */

Test(session, unknown_destination_answers_404_and_stays_open)
{
    struct fake *f = connect12();

    subscribe(f, "st", "/user/queue/status", "auto");
    FEED(f, "SEND\ndestination:/socket/chat/nope\n\n\0");
    pump(f);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(str, (char *)th(&f->frames[0], "destination"), "/user/queue/status"));
    cr_assert(eq(str, (char *)th(&f->frames[0], "content-type"),
                 "application/json;charset=UTF-8"));
    cr_assert(eq(str, f->frames[0].body,
                 "{\"code\":404,\"status\":\"失败\",\"content\":\"unknown destination /socket/chat/nope\"}"));
    cr_assert(eq(int, wants_close(f, NULL), 0));
}

Test(session, send_answers_503_while_the_store_is_down)
{
    struct fake *f;
    cg_store *st = NULL;
    cg_chat *real = NULL;

    /* A store that never connects, behind the real chat module. */
    free(cfg.redis_url);
    cfg.redis_url = strdup("unix:///nonexistent/chatgate-test.sock");
    cg_test_redis_url(&cfg, cfg.redis_url);
    cr_assert(eq(int, cg_store_create(&loop, &cfg, &srv.metrics, &st), 0));
    cr_assert(eq(int, cg_chat_create(&cfg, st, &srv.metrics, &real), 0));
    cg_chat_destroy(srv.chat);
    srv.chat = real;
    f = connect12();
    subscribe(f, "ss", "/user/queue/send/status", "auto");
    FEED(f, "SEND\ndestination:/socket/chat/send\nreceipt:r\n\n"
            "{\"msgID\":\"0123456789abcdef\",\"reciverId\":2,\"content\":\"hi\"}\0");
    pump(f);
    /* Refused at once, answered on the next loop turn; the RECEIPT waits. */
    cr_assert(eq(sz, f->nframes, 0));
    uv_run(&loop, UV_RUN_NOWAIT);
    pump(f);
    cr_assert(eq(sz, f->nframes, 2));
    cr_assert(eq(str, (char *)th(&f->frames[0], "destination"), "/user/queue/send/status"));
    cr_assert(not(eq(ptr, strstr(f->frames[0].body, "\"code\":503"), NULL)));
    cr_assert(not(eq(ptr, strstr(f->frames[0].body, "\"msgID\":\"0123456789abcdef\""), NULL)));
    cr_assert(eq(int, f->frames[1].cmd, STOMP_CMD_RECEIPT));
    cr_assert(eq(int, wants_close(f, NULL), 0));
    transport_closed(f);
    cg_store_close(st, NULL, NULL);
}

Test(session, receipts_follow_their_answers_in_request_order)
{
    struct fake *f = connect12();

    subscribe(f, "st", "/user/queue/status", "auto");
    subscribe(f, "ss", "/user/queue/send/status", "auto");
    chat_w.mode = MODE_HOLD;
    FEED(f, "SEND\ndestination:/socket/chat/send\nreceipt:a\n\n{\"msgID\":\"one\"}\0"
            "SEND\ndestination:/socket/chat/send\nreceipt:b\n\n{\"msgID\":\"two\"}\0"
            "SEND\ndestination:/x\nreceipt:c\n\n\0");
    pump(f);
    cr_assert(eq(sz, f->nframes, 0));            /* blocked behind "one" */
    cr_assert(eq(u32, cg_session__inflight(f->s), 2));
    answer(1, CG_TOPIC_SEND_STATUS, "{\"msgID\":\"two\"}");   /* Redis out of order */
    pump(f);
    cr_assert(eq(sz, f->nframes, 0));
    answer(0, CG_TOPIC_SEND_STATUS, "{\"msgID\":\"one\"}");
    pump(f);
    cr_assert(eq(sz, f->nframes, 6));
    cr_assert(eq(str, f->frames[0].body, "{\"msgID\":\"one\"}"));
    cr_assert(eq(str, (char *)th(&f->frames[1], "receipt-id"), "a"));
    cr_assert(eq(str, f->frames[2].body, "{\"msgID\":\"two\"}"));
    cr_assert(eq(str, (char *)th(&f->frames[3], "receipt-id"), "b"));
    cr_assert(eq(str, (char *)th(&f->frames[4], "destination"), "/user/queue/status"));
    cr_assert(eq(str, (char *)th(&f->frames[5], "receipt-id"), "c"));
    cr_assert(eq(u32, cg_session__inflight(f->s), 0));
}

Test(session, answer_without_a_subscription_is_dropped_but_receipt_still_comes)
{
    struct fake *f = connect12();

    chat_w.mode = MODE_HOLD;
    FEED(f, "SEND\ndestination:/socket/chat/send\nreceipt:a\n\n{}\0");
    answer(0, CG_TOPIC_SEND_STATUS, "{\"code\":200}");
    pump(f);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(int, f->frames[0].cmd, STOMP_CMD_RECEIPT));
}

Test(session, answer_for_a_closed_session_is_dropped)
{
    struct fake *f = connect12();
    uint64_t sid = cg_session_id(f->s);

    subscribe(f, "ss", "/user/queue/send/status", "auto");
    chat_w.mode = MODE_HOLD;
    FEED(f, "SEND\ndestination:/socket/chat/send\n\n{}\0");
    transport_closed(f);
    run_for(1);                             /* the timer's close_cb frees the session */
    cr_assert(eq(ptr, cg_session_lookup(&srv, sid), NULL));   /* the answer's lookup misses */
    answer(0, CG_TOPIC_SEND_STATUS, "{\"code\":200}");   /* ASan: no use after free */
}

Test(session, receipt_id_is_escaped_back_in_1_2)
{
    struct fake *f = connect12();

    FEED(f, "SEND\ndestination:/x\nreceipt:a\\cb\\nc\n\n\0");
    pump(f);
    cr_assert(eq(str, (char *)th(&f->frames[0], "receipt-id"), "a:b\nc"));
}

Test(session, disconnect_receipt_follows_ten_thousand_answers)
{
    enum { N = 10000 };
    static char buf[N * 80 + 64];
    struct fake *f = connect12();
    size_t n = 0, i, got = 0, iter;
    char expect[32];
    int code = 0;

    subscribe(f, "ss", "/user/queue/send/status", "auto");
    chat_w.mode = MODE_HOLD;
    f->store = 0;
    for (i = 0; i < N; i++)
        n += (size_t)sprintf(buf + n, "SEND\ndestination:/socket/chat/send\n\nm%05zu", i) + 1;
    n += (size_t)sprintf(buf + n, "DISCONNECT\nreceipt:x\n\n") + 1;
    feed(f, buf, n);
    cr_assert(eq(sz, chat_w.n, (size_t)cfg.max_inflight));   /* backpressure */
    cr_assert(eq(int, f->paused, 1));

    f->store = 1;
    for (iter = 0; iter < 100000 && !wants_close(f, NULL); iter++) {
        /* Answer what is held, newest first: order must still hold. */
        for (i = chat_w.n; i-- > 0;) {
            if (!chat_w.v[i].answered) {
                char body[80];

                snprintf(body, sizeof body, "{\"msgID\":\"%s\"}", chat_w.v[i].body);
                answer(i, CG_TOPIC_SEND_STATUS, body);
            }
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        pump(f);
        for (i = 0; i < f->nframes; i++, got++) {
            if (got < N) {
                cr_assert(eq(int, f->frames[i].cmd, STOMP_CMD_MESSAGE));
                snprintf(expect, sizeof expect, "{\"msgID\":\"m%05zu\"}", got);
                cr_assert(eq(str, f->frames[i].body, expect));
            } else {
                cr_assert(eq(int, f->frames[i].cmd, STOMP_CMD_RECEIPT));
                cr_assert(eq(str, (char *)th(&f->frames[i], "receipt-id"), "x"));
            }
        }
        frames_clear(f);
    }
    cr_assert(eq(sz, got, (size_t)N + 1));
    cr_assert(eq(sz, chat_w.n, (size_t)N));
    cr_assert(eq(int, wants_close(f, &code), 1));
    cr_assert(eq(int, code, 1000));
}

Test(session, inflight_limit_pauses_reading_and_resumes_below_half)
{
    struct fake *f;
    int i;

    cfg.max_inflight = 4;
    f = connect12();
    chat_w.mode = MODE_HOLD;
    for (i = 0; i < 10; i++)
        sendf(f, "SEND\ndestination:/socket/chat/send\n\n%d", i);
    cr_assert(eq(sz, chat_w.n, 4));
    cr_assert(eq(int, f->paused, 1));
    cr_assert(eq(int, cg_session__read_paused(f->s), 1));
    answer(0, CG_TOPIC_SEND_STATUS, "{}");
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert(eq(int, f->paused, 1));              /* 3 > 4 / 2 */
    answer(1, CG_TOPIC_SEND_STATUS, "{}");
    cr_assert(eq(int, f->paused, 0));              /* 2 <= 4 / 2 */
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert(eq(sz, chat_w.n, 6));                /* two more parsed */
    cr_assert(eq(int, f->paused, 1));
}

Test(session, request_that_cannot_start_fails_the_session)
{
    struct fake *f = connect12();

    chat_w.mode = MODE_NOMEM;
    FEED(f, "SEND\ndestination:/socket/chat/send\n\n{}\0");
    expect_error(f, "500 internal error", 1011);
    cr_assert(eq(u32, cg_session__inflight(f->s), 0));
}

Test(session, frame_split_at_every_offset_gives_the_same_output)
{
    static const char script[] =
        "SUBSCRIBE\nid:st\ndestination:/user/queue/status\n\n\0"
        "\n\r\n"
        "SEND\ndestination:/x\r\ncontent-length:5\nreceipt:r1\n\na\0b\0c\0"
        "SEND\ndestination:/y\nreceipt:r2\n\n\0";
    size_t len = sizeof script - 1, cut;

    for (cut = 0; cut <= len; cut++) {
        struct fake *f = connect12();

        feed(f, script, cut);
        feed(f, script + cut, len - cut);
        pump(f);
        cr_assert(eq(sz, f->nframes, 4), "cut at %zu", cut);
        cr_assert(eq(str, (char *)th(&f->frames[1], "receipt-id"), "r1"));
        cr_assert(eq(str, (char *)th(&f->frames[3], "receipt-id"), "r2"));
        cr_assert(not(eq(ptr, strstr(f->frames[2].body, "/y"), NULL)));
        transport_closed(f);
    }
}

Test(session, frames_fed_one_byte_at_a_time)
{
    static const char script[] =
        "SUBSCRIBE\nid:st\ndestination:/user/queue/status\n\n\0"
        "SEND\ndestination:/x\nreceipt:r1\n\n\0"
        "BEGIN\ntransaction:t\n\n\0"
        "SEND\ndestination:/y\ntransaction:t\n\n\0"
        "COMMIT\ntransaction:t\nreceipt:r2\n\n\0";
    struct fake *f = connect12();
    size_t i;

    for (i = 0; i < sizeof script - 1; i++)
        feed(f, script + i, 1);
    pump(f);
    cr_assert(eq(sz, f->nframes, 4));
    cr_assert(eq(str, (char *)th(&f->frames[1], "receipt-id"), "r1"));
    cr_assert(eq(str, (char *)th(&f->frames[3], "receipt-id"), "r2"));
    cr_assert(eq(sz, cg_session__input_capacity(f->s), 0));   /* freed when empty */
}

Test(session, many_frames_in_one_call)
{
    static char buf[100 * 64];
    struct fake *f = connect12();
    size_t n = 0, i;
    char id[16];

    subscribe(f, "st", "/user/queue/status", "auto");
    for (i = 0; i < 100; i++)
        n += (size_t)sprintf(buf + n, "SEND\ndestination:/x\nreceipt:%zu\n\n", i) + 1;
    feed(f, buf, n);
    pump(f);
    cr_assert(eq(sz, f->nframes, 200));
    for (i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "%zu", i);
        cr_assert(eq(int, f->frames[2 * i].cmd, STOMP_CMD_MESSAGE));
        cr_assert(eq(str, (char *)th(&f->frames[2 * i + 1], "receipt-id"), id));
    }
    cr_assert(eq(u64, srv.metrics.frames_in, 100 + 2));   /* + CONNECT + SUBSCRIBE */
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                              */
/* ------------------------------------------------------------------------ */

Test(session, transaction_frames_take_effect_at_commit_in_order)
{
    struct fake *f = connect12();

    subscribe(f, "ss", "/user/queue/send/status", "auto");
    chat_w.mode = MODE_HOLD;
    FEED(f, "BEGIN\ntransaction:t1\nreceipt:b\n\n\0"
            "SEND\ndestination:/socket/chat/send\ntransaction:t1\nreceipt:s1\n\n1\0"
            "SEND\ndestination:/socket/chat/send\ntransaction:t1\n\n2\0");
    pump(f);
    cr_assert(eq(sz, chat_w.n, 0));                /* nothing ran yet */
    cr_assert(eq(sz, f->nframes, 2));              /* receipts b, s1 */
    FEED(f, "COMMIT\ntransaction:t1\nreceipt:c\n\n\0");
    cr_assert(eq(sz, chat_w.n, 2));
    cr_assert(eq(str, chat_w.v[0].body, "1"));
    cr_assert(eq(str, chat_w.v[1].body, "2"));
    pump(f);
    cr_assert(eq(sz, f->nframes, 2));              /* c waits for the answers */
    answer(0, CG_TOPIC_SEND_STATUS, "{\"n\":1}");
    answer(1, CG_TOPIC_SEND_STATUS, "{\"n\":2}");
    pump(f);
    cr_assert(eq(sz, f->nframes, 5));
    cr_assert(eq(str, f->frames[2].body, "{\"n\":1}"));
    cr_assert(eq(str, f->frames[3].body, "{\"n\":2}"));
    cr_assert(eq(str, (char *)th(&f->frames[4], "receipt-id"), "c"));
}

Test(session, abort_drops_the_transaction)
{
    struct fake *f = connect12();

    subscribe(f, "st", "/user/queue/status", "auto");
    FEED(f, "BEGIN\ntransaction:t\n\n\0SEND\ndestination:/x\ntransaction:t\n\n\0"
            "ABORT\ntransaction:t\nreceipt:a\n\n\0");
    pump(f);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(int, f->frames[0].cmd, STOMP_CMD_RECEIPT));
    FEED(f, "COMMIT\ntransaction:t\n\n\0");        /* gone */
    expect_error(f, "unknown transaction \"t\"", 1002);
}

struct tx_row {
    char frames[160];
    char message[64];
};

ParameterizedTestParameters(session, transaction_misuse_is_an_error)
{
    static struct tx_row rows[] = {
        { "SEND\ndestination:/x\ntransaction:nope\n\n", "unknown transaction \"nope\"" },
        { "COMMIT\ntransaction:nope\n\n",              "unknown transaction \"nope\"" },
        { "ABORT\ntransaction:nope\n\n",               "unknown transaction \"nope\"" },
        { "ACK\nid:7-1\ntransaction:nope\n\n",         "unknown transaction \"nope\"" },
        { "NACK\nid:7-1\ntransaction:nope\n\n",        "unknown transaction \"nope\"" },
        { "BEGIN\ntransaction:t\n\n",                  "transaction \"t\" already begun" },
    };

    return cr_make_param_array(struct tx_row, rows, sizeof rows / sizeof rows[0]);
}

ParameterizedTest(struct tx_row *row, session, transaction_misuse_is_an_error)
{
    struct fake *f = connect12();

    FEED(f, "SUBSCRIBE\nid:r\ndestination:/user/alice/recive\nack:client\n\n\0"
            "BEGIN\ntransaction:t\n\n\0");
    sendf(f, "%s", row->frames);
    expect_error(f, row->message, 1002);
}

Test(session, transaction_frame_limit_at_and_past_it)
{
    struct fake *f;
    int i;

    cfg.max_tx_frames = 3;
    f = connect12();
    FEED(f, "BEGIN\ntransaction:t\n\n\0");
    for (i = 0; i < 3; i++)
        FEED(f, "SEND\ndestination:/x\ntransaction:t\n\n\0");
    pump(f);
    cr_assert(eq(int, wants_close(f, NULL), 0));
    FEED(f, "SEND\ndestination:/x\ntransaction:t\n\n\0");
    expect_error(f, "transaction exceeds 3 frames (max_tx_frames)", 1008);
}

/* The copies of all open transactions share max_tx_bytes; COMMIT and
 * ABORT give their share back. Each copy counts its body, its destination
 * and a small fixed header (under 64 bytes). */
Test(session, transaction_byte_budget_is_shared_and_given_back)
{
    static char body[2001];
    struct fake *f;
    int i;

    memset(body, 'b', 2000);
    cfg.max_tx_bytes = 4096;
    f = connect12();
    FEED(f, "BEGIN\ntransaction:t\n\n\0BEGIN\ntransaction:u\n\n\0");
    for (i = 0; i < 3; i++) {          /* three rounds: the budget comes back */
        sendf(f, "SEND\ndestination:/x\ntransaction:t\n\n%s", body);
        sendf(f, "SEND\ndestination:/x\ntransaction:u\n\n%s", body);
        pump(f);
        cr_assert(eq(int, wants_close(f, NULL), 0), "round %d", i);
        FEED(f, "ABORT\ntransaction:t\n\n\0ABORT\ntransaction:u\n\n\0"
                "BEGIN\ntransaction:t\n\n\0BEGIN\ntransaction:u\n\n\0");
    }
    sendf(f, "SEND\ndestination:/x\ntransaction:t\n\n%s", body);
    sendf(f, "SEND\ndestination:/x\ntransaction:u\n\n%s", body);
    pump(f);
    cr_assert(eq(int, wants_close(f, NULL), 0));
    sendf(f, "SEND\ndestination:/x\ntransaction:t\n\nb");
    expect_error(f, "transactions exceed 4096 bytes (max_tx_bytes)", 1008);
}

Test(session, disconnect_aborts_open_transactions)
{
    struct fake *f = connect12();
    int code;

    subscribe(f, "st", "/user/queue/status", "auto");
    FEED(f, "BEGIN\ntransaction:t\n\n\0SEND\ndestination:/x\ntransaction:t\n\n\0"
            "DISCONNECT\nreceipt:bye\n\n\0");
    pump(f);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(str, (char *)th(&f->frames[0], "receipt-id"), "bye"));
    cr_assert(eq(int, wants_close(f, &code), 1));
    cr_assert(eq(int, code, 1000));
}

/* ------------------------------------------------------------------------ */
/* Deliveries, ACK                                                           */
/* ------------------------------------------------------------------------ */

static void
push(uint64_t uid, const char *payload)
{
    cg_registry_on_push(uid, payload, strlen(payload), srv.registry);
}

Test(session, chat_message_goes_to_the_first_recive_subscription_once)
{
    struct fake *f = connect12(), *g = connect12();

    subscribe(f, "by-name", "/user/alice/recive", "auto");
    subscribe(f, "by-uid", "/user/7/recive", "auto");
    subscribe(g, "mine", "/user/7/recive", "auto");
    pump(f);
    pump(g);
    cr_assert(eq(sz, cg_registry_user_sessions(srv.registry, 7), 2));
    push(7, "M255:1504712402000:{\"id\":255,\"content\":\"起来聊天\"}");
    push(8, "M1:1:{}");                            /* somebody else's */
    pump(f);
    pump(g);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(str, (char *)th(&f->frames[0], "subscription"), "by-name"));
    cr_assert(eq(str, (char *)th(&f->frames[0], "destination"), "/user/alice/recive"));
    cr_assert(eq(str, (char *)th(&f->frames[0], "message-id"), "7-255"));
    cr_assert(eq(str, (char *)th(&f->frames[0], "content-type"),
                 "application/json;charset=UTF-8"));
    cr_assert(eq(ptr, (char *)th(&f->frames[0], "redelivered"), NULL));
    cr_assert(eq(str, f->frames[0].body, "{\"id\":255,\"content\":\"起来聊天\"}"));
    cr_assert(eq(sz, g->nframes, 1));
    cr_assert(eq(str, (char *)th(&g->frames[0], "destination"), "/user/7/recive"));
    cr_assert(eq(u64, srv.metrics.deliveries, 2));
    cr_assert(eq(u64, srv.metrics.send_deliver_ms.count, 1));
}

/* The subscription id comes back in every MESSAGE exactly as the client
 * sent it: escaped for the version (so no byte of it can end a header or
 * the frame early), never raw. The fake parses what the session wrote
 * with the session's version, so a frame the id broke would fail
 * parse_out() or come back with another value. */
struct sub_id_row {
    char accept[8];
    char wire[48];        /* the id as it goes on the wire, escaped */
    char id[48];          /* what it means, and what must come back */
};

static const struct sub_id_row sub_id_rows[] = {
    { "1.2", "s\\c1\\n2\\\\3\\r4", "s:1\n2\\3\r4" },
    { "1.1", "s\\c1\\n2\\\\3", "s:1\n2\\3" },
    { "1.0", "s:1\\2", "s:1\\2" },                 /* 1.0: no escapes */
    { "1.2", "\xe8\xae\xa2\xe9\x98\x85-1", "\xe8\xae\xa2\xe9\x98\x85-1" },  /* 订阅-1 */
};

ParameterizedTestParameters(session, subscription_id_comes_back_exactly_in_every_version)
{
    return cr_make_param_array(struct sub_id_row, (void *)sub_id_rows,
                               sizeof sub_id_rows / sizeof sub_id_rows[0]);
}

ParameterizedTest(struct sub_id_row *row, session, subscription_id_comes_back_exactly_in_every_version)
{
    struct fake *f = connect_as(row->accept, "0,0");

    subscribe(f, row->wire, "/user/7/recive", "auto");
    pump(f);
    push(7, "M255:1504712402000:{\"id\":255}");
    push(7, "M256:1504712402001:{\"id\":256}");
    pump(f);
    cr_assert(eq(sz, f->nframes, 2));
    for (size_t i = 0; i < 2; i++) {
        cr_assert(eq(int, f->frames[i].cmd, STOMP_CMD_MESSAGE));
        cr_assert(eq(str, (char *)th(&f->frames[i], "subscription"), row->id));
        cr_assert(eq(str, (char *)th(&f->frames[i], "destination"), "/user/7/recive"));
    }
    cr_assert(eq(str, f->frames[1].body, "{\"id\":256}"));
}

Test(session, subscription_id_that_is_not_utf8_is_an_error)
{
    struct fake *f = connect12();

    /* Only a binary WebSocket message can carry these bytes. */
    subscribe(f, "s\xff\xfe", "/user/7/recive", "auto");
    expect_error(f, "subscription id is not valid UTF-8", 1002);
    cr_assert(eq(sz, cg_registry_user_sessions(srv.registry, 7), 1));
    push(7, "M255:1504712402000:{}");
    pump(f);
    cr_assert(eq(sz, f->count[STOMP_CMD_MESSAGE], 0));
}

Test(session, delivered_notice_needs_its_subscription)
{
    struct fake *f = connect12(), *g = connect12();

    subscribe(f, "d", "/user/queue/delivered", "auto");
    push(7, "D{\"msgID\":\"x\",\"id\":3}");
    pump(f);
    pump(g);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(str, (char *)th(&f->frames[0], "destination"), "/user/queue/delivered"));
    cr_assert(eq(str, f->frames[0].body, "{\"msgID\":\"x\",\"id\":3}"));
    cr_assert(eq(sz, g->nframes, 0));
}

Test(session, malformed_pushes_are_ignored)
{
    struct fake *f = connect12();

    subscribe(f, "r", "/user/alice/recive", "auto");
    push(7, "M");
    push(7, "Mx:1:{}");
    push(7, "M1:{}");
    push(7, "L1234");                              /* not a hash */
    push(7, "Zwhat");
    cg_registry_on_push(7, "", 0, srv.registry);
    pump(f);
    cr_assert(eq(sz, f->nframes, 0));
    cr_assert(eq(int, wants_close(f, NULL), 0));
}

Test(session, logout_push_closes_the_sessions_of_that_token)
{
    struct fake *f = connect12(), *g = new_fake();
    struct cg_principal other = alice;
    int code;

    snprintf(other.token_hash, sizeof other.token_hash, "%s", HASH_B);
    FEED(g, "CONNECT\naccept-version:1.2\npasscode:" TOKEN "\n\n\0");
    auth_answer(0, &other);
    pump(g);
    push(7, "L" HASH_A);
    cr_assert(eq(int, wants_close(f, &code), 1));
    cr_assert(eq(int, code, 1008));
    cr_assert(eq(int, wants_close(g, NULL), 0));
    cr_assert(eq(int, auth_w.forgets, 1));
    cr_assert(eq(str, auth_w.forgot, HASH_A));
    push(99, "L" HASH_B);                          /* nobody here: forgotten */
    cr_assert(eq(int, auth_w.forgets, 2));
    cr_assert(eq(int, wants_close(g, NULL), 0));
}

Test(session, attach_failure_is_503)
{
    struct fake *f;
    cg_store *st = NULL;

    /* A store that is not connected refuses to subscribe at once. */
    free(cfg.redis_url);
    cfg.redis_url = strdup("unix:///nonexistent/chatgate-test.sock");
    cg_test_redis_url(&cfg, cfg.redis_url);
    cr_assert(eq(int, cg_store_create(&loop, &cfg, &srv.metrics, &st), 0));
    srv.store = st;
    f = new_fake();
    FEED(f, "CONNECT\naccept-version:1.2\npasscode:" TOKEN "\n\n\0");
    auth_answer(0, &alice);
    expect_error(f, "503 service unavailable", 1011);
    cr_assert(eq(str, frame_at(f, 0)->body, "could not subscribe to the user's channel"));
    cr_assert(eq(sz, cg_registry_user_sessions(srv.registry, 7), 0));
    transport_closed(f);
    srv.store = NULL;
    cg_store_close(st, NULL, NULL);
}

Test(session, ack_in_client_mode_confirms_that_message)
{
    struct fake *f = connect12();

    chat_w.mode = MODE_HOLD;
    subscribe(f, "r", "/user/alice/recive", "client-individual");
    subscribe(f, "rs", "/user/queue/recive/status", "auto");
    push(7, "M5:1:{\"id\":5}");
    pump(f);
    cr_assert(eq(str, (char *)th(&f->frames[0], "ack"), "7-5"));
    FEED(f, "ACK\nid:7-5\nreceipt:k\n\n\0");
    cr_assert(eq(sz, chat_w.n, 1));
    cr_assert(eq(chr, chat_w.v[0].kind, 'R'));
    cr_assert(eq(u64, chat_w.v[0].by_id, 5));
    answer(0, CG_TOPIC_RECIVE_STATUS, "{\"code\":200}");
    pump(f);
    cr_assert(eq(sz, f->nframes, 3));
    cr_assert(eq(str, (char *)th(&f->frames[1], "destination"), "/user/queue/recive/status"));
    cr_assert(eq(str, (char *)th(&f->frames[2], "receipt-id"), "k"));
    /* NACK and foreign or status ids confirm nothing */
    FEED(f, "NACK\nid:7-5\n\n\0ACK\nid:8-5\n\n\0ACK\nid:st-1\n\n\0ACK\nid:junk\n\n\0");
    cr_assert(eq(sz, chat_w.n, 1));
    cr_assert(eq(int, wants_close(f, NULL), 0));
}

Test(session, ack_on_an_auto_subscription_is_ignored)
{
    struct fake *f = connect12();

    chat_w.mode = MODE_HOLD;
    subscribe(f, "r", "/user/alice/recive", "auto");
    push(7, "M5:1:{}");
    pump(f);
    cr_assert(eq(ptr, (char *)th(&f->frames[0], "ack"), NULL));
    FEED(f, "ACK\nid:7-5\n\n\0");
    cr_assert(eq(sz, chat_w.n, 0));
}

Test(session, ack_in_1_1_names_message_id_and_subscription)
{
    struct fake *f = connect_as("1.1", "0,0");

    chat_w.mode = MODE_HOLD;
    subscribe(f, "r", "/user/alice/recive", "client");
    subscribe(f, "a", "/user/7/recive", "auto");
    FEED(f, "ACK\nmessage-id:7-9\nsubscription:a\n\n\0");
    cr_assert(eq(sz, chat_w.n, 0));               /* auto: ignored */
    FEED(f, "ACK\nmessage-id:7-9\nsubscription:r\n\n\0");
    cr_assert(eq(sz, chat_w.n, 1));
    cr_assert(eq(u64, chat_w.v[0].by_id, 9));
}

Test(session, ack_inside_a_transaction_runs_at_commit)
{
    struct fake *f = connect12();

    chat_w.mode = MODE_HOLD;
    subscribe(f, "r", "/user/alice/recive", "client");
    FEED(f, "BEGIN\ntransaction:t\n\n\0ACK\nid:7-3\ntransaction:t\n\n\0");
    cr_assert(eq(sz, chat_w.n, 0));
    FEED(f, "COMMIT\ntransaction:t\n\n\0");
    cr_assert(eq(sz, chat_w.n, 1));
    cr_assert(eq(u64, chat_w.v[0].by_id, 3));
}

/* ------------------------------------------------------------------------ */
/* Output cap                                                                */
/* ------------------------------------------------------------------------ */

static void
push_big(uint64_t id, size_t body)
{
    static char buf[1 << 16];
    int n = snprintf(buf, sizeof buf, "M%llu:1:", (unsigned long long)id);

    memset(buf + n, 'x', body);
    cg_registry_on_push(7, buf, (size_t)n + body, srv.registry);
}

Test(session, hard_output_cap_closes_at_once)
{
    struct fake *f;
    uint64_t i;

    cfg.out_max_bytes = 65536;
    cfg.out_soft_bytes = 65536;
    f = connect12();
    subscribe(f, "r", "/user/alice/recive", "auto");
    pump(f);
    for (i = 1; i <= 100 && !f->ops_closed; i++)
        push_big(i, 1024);
    cr_assert(eq(int, f->ops_closed, 1));
    cr_assert(eq(int, f->close_code, 1013));
    cr_assert(lt(u64, i, 100));
    cr_assert(eq(u64, srv.metrics.output_cap_closes, 1));
    cr_assert(eq(sz, cg_session_queued_bytes(f->s), 0));   /* released at once */
    push_big(1000, 1024);                                 /* ignored now */
    cr_assert(eq(int, f->ops_closed, 1));
    cr_assert(eq(int, wants_close(f, NULL), 1));
}

Test(session, soft_output_cap_must_last_out_soft_seconds)
{
    struct fake *f;
    uint64_t t0;

    cfg.out_max_bytes = 65536;
    cfg.out_soft_bytes = 8192;
    cfg.out_soft_seconds = 1;
    f = connect12();
    subscribe(f, "r", "/user/alice/recive", "auto");
    pump(f);
    t0 = uv_now(&loop);
    push_big(1, 10000);
    cr_assert(eq(int, f->ops_closed, 0));
    run_for(500);
    cr_assert(f->ops_closed == 0 || loop_since(t0) >= 1000,   /* < out_soft_seconds */
              "closed after %llu ms", (unsigned long long)loop_since(t0));
    run_for(600);
    cr_assert(eq(int, f->ops_closed, 1));
    cr_assert(eq(int, f->close_code, 1013));
    cr_assert(eq(u64, srv.metrics.output_cap_closes, 1));
}

/* ------------------------------------------------------------------------ */
/* init and sync                                                             */
/* ------------------------------------------------------------------------ */

static struct cg_buf *
item_body(size_t n)
{
    struct cg_buf *b = cg_buf_create(NULL, n);

    memset(b->data, 'i', n);
    return b;
}

/* An init or sync that does not end with 200 answers on both status
 * topics: frames i and i + 1 of f are that answer, with body json. */
static void
expect_batch_failed(struct fake *f, size_t i, const char *json)
{
    struct tframe *st = frame_at(f, i), *is = frame_at(f, i + 1);

    cr_assert(eq(str, (char *)th(st, "destination"), "/user/queue/status"));
    cr_assert(eq(str, st->body, (char *)json));
    cr_assert(eq(str, (char *)th(is, "destination"), "/user/queue/init/status"));
    cr_assert(eq(str, is->body, (char *)json));
}

#define INIT_CUT_JSON                                                          \
    "{\"code\":400,\"status\":\"失败\",\"content\":\"init stopped: no recive "       \
    "subscription left (UNSUBSCRIBE); the messages not delivered stay pending\"}"

/* A session subscribed to recive ("r"), status ("st") and init/status
 * ("i"), whose fetches the test answers. */
static struct fake *
connect_for_batches(void)
{
    struct fake *f = connect12();

    subscribe(f, "r", "/user/alice/recive", "auto");
    subscribe(f, "st", "/user/queue/status", "auto");
    subscribe(f, "i", "/user/queue/init/status", "auto");
    chat_w.mode = MODE_HOLD;
    return f;
}

Test(session, init_needs_a_recive_subscription)
{
    struct fake *f = connect12();

    subscribe(f, "st", "/user/queue/status", "auto");
    subscribe(f, "i", "/user/queue/init/status", "auto");
    chat_w.mode = MODE_HOLD;
    FEED(f, "SEND\ndestination:/socket/chat/init\n\n\0");
    pump(f);
    cr_assert(eq(sz, chat_w.n, 0));
    cr_assert(eq(sz, f->nframes, 2));
    expect_batch_failed(f, 0, "{\"code\":400,\"status\":\"失败\","
                        "\"content\":\"subscribe to /user/alice/recive first\"}");
}

Test(session, unsubscribe_of_recive_mid_init_ends_it_with_init_status)
{
    struct fake *f = connect_for_batches();
    struct cg_buf *b = cg_buf_create("{\"id\":1}", 8);
    struct cg_chat_item items[2] = { { 1, 1, 0, b }, { 2, 1, 0, b } };

    FEED(f, "SEND\ndestination:/socket/chat/init\n\n\0");
    answer_fetch(0, items, 2, 1);                   /* first batch; more to come */
    cr_assert(eq(sz, chat_w.n, 2));                 /* the next one is in flight */
    pump(f);
    cr_assert(eq(sz, f->nframes, 2));
    FEED(f, "UNSUBSCRIBE\nid:r\nreceipt:u\n\n\0");
    pump(f);
    cr_assert(eq(sz, f->nframes, 5));
    expect_batch_failed(f, 2, INIT_CUT_JSON);
    cr_assert(eq(str, (char *)th(frame_at(f, 4), "receipt-id"), "u"));
    /* the batch that was in flight is stale: nothing more, no second end */
    answer_fetch(1, items, 2, 0);
    pump(f);
    cr_assert(eq(sz, f->nframes, 5));
    cr_assert(eq(sz, chat_w.n, 2));
    /* a new subscription and init start over */
    subscribe(f, "r2", "/user/7/recive", "auto");
    FEED(f, "SEND\ndestination:/socket/chat/init\n\n\0");
    cr_assert(eq(sz, chat_w.n, 3));
    cr_assert(eq(u64, chat_w.v[2].after_id, 0));
    cr_assert(eq(int, wants_close(f, NULL), 0));
    cg_buf_unref(b);
}


Test(session, init_keeps_going_on_a_second_recive_subscription)
{
    struct fake *f = connect12();

    subscribe(f, "r", "/user/alice/recive", "auto");
    subscribe(f, "r2", "/user/7/recive", "auto");
    subscribe(f, "i", "/user/queue/init/status", "auto");
    chat_w.mode = MODE_HOLD;
    FEED(f, "SEND\ndestination:/socket/chat/init\n\n\0");
    FEED(f, "UNSUBSCRIBE\nid:r\n\n\0");
    answer_fetch(0, NULL, 0, 0);
    pump(f);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(str, frame_at(f, 0)->body, "{\"code\":200,\"count\":0,\"syncKey\":0}"));
}

/* init/status's syncKey is where the user's stream stood at the last read,
 * not the last id delivered: with nothing pending it is not 0, so a new
 * device does not sync from the start (PROTOCOL.md section 4). */
Test(session, init_status_carries_the_users_position)
{
    struct fake *f = connect12();
    struct cg_buf *b = cg_buf_create("{}", 2);
    struct cg_chat_item items[1] = { { 40, 1, 0, b } };

    subscribe(f, "r", "/user/alice/recive", "auto");
    subscribe(f, "i", "/user/queue/init/status", "auto");
    chat_w.mode = MODE_HOLD;
    FEED(f, "SEND\ndestination:/socket/chat/init\n\n\0");
    answer_fetch_at(0, NULL, 0, 0, 57);
    pump(f);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(str, frame_at(f, 0)->body, "{\"code\":200,\"count\":0,\"syncKey\":57}"));

    /* a message pending below the end: the end, still */
    FEED(f, "SEND\ndestination:/socket/chat/init\n\n\0");
    answer_fetch_at(1, items, 1, 0, 57);
    pump(f);
    cr_assert(eq(sz, f->nframes, 3));
    cr_assert(eq(str, frame_at(f, 2)->body, "{\"code\":200,\"count\":1,\"syncKey\":57}"));
    cg_buf_unref(b);
}

Test(session, init_store_failure_half_way_ends_with_init_status)
{
    struct fake *f = connect_for_batches();
    struct cg_buf *b = cg_buf_create("{}", 2);
    struct cg_chat_item items[1] = { { 1, 1, 0, b } };

    FEED(f, "SEND\ndestination:/socket/chat/init\n\n\0");
    answer_fetch(0, items, 1, 1);
    answer_fetch_err(1, CG_E_STORE);
    pump(f);
    cr_assert(eq(sz, f->nframes, 3));
    expect_batch_failed(f, 1, "{\"code\":503,\"status\":\"失败\","
                        "\"content\":\"init failed: store unavailable\"}");
    cr_assert(eq(sz, chat_w.n, 2));
    cg_buf_unref(b);
}

Test(session, init_streams_pending_messages_then_init_status)
{
    struct fake *f = connect12();
    struct cg_buf *b = cg_buf_create("{\"id\":1}", 8);
    struct cg_chat_item items[3] = { { 1, 1, 0, b }, { 2, 1, 1, b }, { 3, 1, 0, b } };

    subscribe(f, "r", "/user/alice/recive", "auto");
    subscribe(f, "i", "/user/queue/init/status", "auto");
    subscribe(f, "ss", "/user/queue/send/status", "auto");
    chat_w.mode = MODE_HOLD;
    FEED(f, "SEND\ndestination:/socket/chat/init\nreceipt:i\n\n\0"
            "SEND\ndestination:/socket/chat/init\n\n\0");        /* coalesced */
    cr_assert(eq(sz, chat_w.n, 1));
    cr_assert(eq(int, chat_w.v[0].sync, 0));
    cr_assert(eq(u64, chat_w.v[0].after_id, 0));
    /* a batch is at most init_batch, and must fit under the output cap */
    cr_assert(le(sz, chat_w.v[0].limit, (size_t)cfg.init_batch));
    cr_assert(gt(sz, chat_w.v[0].limit, (size_t)cfg.init_batch / 2));
    /* init is a stream, not a ticket: a later request is not blocked */
    FEED(f, "SEND\ndestination:/socket/chat/send\n\n{}\0");
    answer(1, CG_TOPIC_SEND_STATUS, "{\"sent\":1}");
    pump(f);
    cr_assert(eq(sz, f->nframes, 2));
    cr_assert(eq(int, f->frames[0].cmd, STOMP_CMD_RECEIPT));
    cr_assert(eq(str, f->frames[1].body, "{\"sent\":1}"));

    answer_fetch(0, items, 3, 1);
    cr_assert(eq(sz, chat_w.n, 3));                 /* next batch at once: small */
    cr_assert(eq(u64, chat_w.v[2].after_id, 3));
    answer_fetch(2, NULL, 0, 0);
    pump(f);
    cr_assert(eq(sz, f->nframes, 6));
    cr_assert(eq(str, (char *)th(&f->frames[2], "message-id"), "7-1"));
    cr_assert(eq(ptr, (char *)th(&f->frames[2], "redelivered"), NULL));
    cr_assert(eq(str, (char *)th(&f->frames[3], "redelivered"), "true"));
    cr_assert(eq(str, (char *)th(&f->frames[4], "message-id"), "7-3"));
    cr_assert(eq(str, (char *)th(&f->frames[5], "destination"), "/user/queue/init/status"));
    cr_assert(eq(str, f->frames[5].body, "{\"code\":200,\"count\":3,\"syncKey\":3}"));
    cr_assert(eq(u64, srv.metrics.redeliveries, 1));
    cg_buf_unref(b);
}

Test(session, init_of_a_huge_inbox_keeps_the_queue_bounded)
{
    enum { TOTAL = 100000 };
    struct fake *f;
    struct cg_buf *b = item_body(200);
    struct cg_chat_item *items;
    size_t sent = 0, maxq = 0, batches = 0, iter;
    struct tframe *t;

    cfg.out_max_bytes = 1 << 20;
    cfg.out_soft_bytes = 1 << 20;
    f = connect12();
    subscribe(f, "r", "/user/alice/recive", "auto");
    subscribe(f, "i", "/user/queue/init/status", "auto");
    chat_w.mode = MODE_HOLD;
    items = calloc((size_t)cfg.init_batch, sizeof *items);
    FEED(f, "SEND\ndestination:/socket/chat/init\n\n\0");
    f->store = 0;
    for (iter = 0; iter < 10 * TOTAL && sent < TOTAL; iter++) {
        struct held *h = &chat_w.v[chat_w.n - 1];

        if (!h->answered) {
            size_t n = h->limit, k;

            cr_assert(eq(u64, h->after_id, sent));
            if (n > TOTAL - sent)
                n = TOTAL - sent;
            for (k = 0; k < n; k++)
                items[k] = (struct cg_chat_item){ sent + k + 1, 1, 0, b };
            answer_fetch(chat_w.n - 1, items, n, sent + n < TOTAL);
            sent += n;
            batches++;
            f->store = sent == TOTAL;              /* keep the tail frames */
            if (cg_session_queued_bytes(f->s) > maxq)
                maxq = cg_session_queued_bytes(f->s);
        }
        pump(f);                                   /* the socket drains */
    }
    pump(f);
    cr_assert(eq(sz, sent, (size_t)TOTAL));
    cr_assert(eq(sz, f->count[STOMP_CMD_MESSAGE], (size_t)TOTAL + 1));
    t = frame_at(f, f->nframes - 1);
    cr_assert(eq(str, (char *)th(t, "destination"), "/user/queue/init/status"));
    cr_assert(eq(str, t->body, "{\"code\":200,\"count\":100000,\"syncKey\":100000}"));
    /* flat: never much more than one batch above the low-water mark */
    cr_assert(lt(sz, maxq, (size_t)256 * 1024), "queue peaked at %zu bytes", maxq);
    cr_assert(ge(sz, batches, (size_t)TOTAL / (size_t)cfg.init_batch));
    cr_assert(eq(int, wants_close(f, NULL), 0));
    free(items);
    cg_buf_unref(b);
}

/* An init whose first batch (100 messages of 1000 bytes: ~100 KiB) is
 * queued and waits for the socket to drain below the low-water mark
 * (64 KiB) before it fetches the next. body is the messages' body. */
static struct fake *
init_paused_for_the_drain(struct cg_buf *body)
{
    struct fake *f;
    struct cg_chat_item items[100];
    size_t k;

    cfg.out_max_bytes = 1 << 20;
    f = connect12();                                /* low water: 64 KiB */
    subscribe(f, "r", "/user/alice/recive", "auto");
    subscribe(f, "i", "/user/queue/init/status", "auto");
    chat_w.mode = MODE_HOLD;
    FEED(f, "SEND\ndestination:/socket/chat/init\n\n\0");
    for (k = 0; k < 100; k++)
        items[k] = (struct cg_chat_item){ k + 1, 1, 0, body };
    answer_fetch(0, items, 100, 1);
    cr_assert(eq(sz, chat_w.n, 1));                 /* no next fetch yet */
    return f;
}

Test(session, init_waits_for_the_socket_to_drain)
{
    struct cg_buf *b = item_body(1000);
    struct fake *f = init_paused_for_the_drain(b);

    pump(f);
    cr_assert(eq(sz, chat_w.n, 2));                 /* drained: next batch */
    cr_assert(eq(u64, chat_w.v[1].after_id, 100));
    cg_buf_unref(b);
}

Test(session, init_paused_for_the_drain_ends_at_unsubscribe)
{
    struct cg_buf *b = item_body(1000);
    struct fake *f = init_paused_for_the_drain(b);

    FEED(f, "UNSUBSCRIBE\nid:r\n\n\0");
    pump(f);                                        /* drained: no next batch */
    cr_assert(eq(sz, chat_w.n, 1));
    cr_assert(eq(sz, f->count[STOMP_CMD_MESSAGE], 1)); /* queued ones went with r */
    cr_assert(eq(str, (char *)th(frame_at(f, 0), "destination"), "/user/queue/init/status"));
    cr_assert(eq(str, frame_at(f, 0)->body, INIT_CUT_JSON));
    cg_buf_unref(b);
}

Test(session, sync_answers_in_request_order_with_more)
{
    struct fake *f = connect12();
    struct cg_buf *b = cg_buf_create("{}", 2);
    struct cg_chat_item items[2] = { { 6, 1, 0, b }, { 9, 1, 1, b } };

    subscribe(f, "r", "/user/alice/recive", "auto");
    subscribe(f, "i", "/user/queue/init/status", "auto");
    subscribe(f, "ss", "/user/queue/send/status", "auto");
    chat_w.mode = MODE_HOLD;
    FEED(f, "SEND\ndestination:/socket/chat/send\n\n{}\0"
            "SEND\ndestination:/socket/chat/sync\nreceipt:s\n\n{\"syncKey\":5}\0"
            "SEND\ndestination:/socket/chat/sync\n\n{\"syncKey\":9}\0");
    /* One sync of a session in Redis at a time: the second waits for the
     * first's answer (PROTOCOL.md section 4, sync). */
    cr_assert(eq(sz, chat_w.n, 2));
    cr_assert(eq(int, chat_w.v[1].sync, 1));
    cr_assert(eq(u64, chat_w.v[1].after_id, 5));
    cr_assert(eq(sz, chat_w.v[1].limit, (size_t)cfg.sync_batch));
    answer_fetch(1, items, 2, 1);
    cr_assert(eq(sz, chat_w.n, 3));
    cr_assert(eq(int, chat_w.v[2].sync, 1));
    cr_assert(eq(u64, chat_w.v[2].after_id, 9));
    answer_fetch(2, NULL, 0, 0);
    pump(f);
    cr_assert(eq(sz, f->nframes, 0));               /* the send is first */
    answer(0, CG_TOPIC_SEND_STATUS, "{\"sent\":1}");
    pump(f);
    cr_assert(eq(sz, f->nframes, 6));
    cr_assert(eq(str, f->frames[0].body, "{\"sent\":1}"));
    cr_assert(eq(str, (char *)th(&f->frames[1], "message-id"), "7-6"));
    cr_assert(eq(str, (char *)th(&f->frames[2], "message-id"), "7-9"));
    cr_assert(eq(str, (char *)th(&f->frames[2], "redelivered"), "true"));
    cr_assert(eq(str, f->frames[3].body, "{\"code\":200,\"count\":2,\"syncKey\":9,\"more\":true}"));
    cr_assert(eq(str, (char *)th(&f->frames[4], "receipt-id"), "s"));
    cr_assert(eq(str, f->frames[5].body, "{\"code\":200,\"count\":0,\"syncKey\":9,\"more\":false}"));
    cg_buf_unref(b);
}

Test(session, sync_answered_after_recive_unsubscribe_is_400_and_keeps_the_key)
{
    struct fake *f = connect_for_batches();
    struct cg_buf *b = cg_buf_create("{}", 2);
    struct cg_chat_item items[2] = { { 6, 1, 0, b }, { 9, 1, 0, b } };

    FEED(f, "SEND\ndestination:/socket/chat/sync\nreceipt:s\n\n{\"syncKey\":5}\0"
            "UNSUBSCRIBE\nid:r\nreceipt:u\n\n\0");
    answer_fetch(0, items, 2, 0);
    pump(f);
    /* not 200 count 2 syncKey 9: nothing was delivered */
    cr_assert(eq(sz, f->nframes, 4));
    expect_batch_failed(f, 0, "{\"code\":400,\"status\":\"失败\",\"content\":"
                        "\"sync stopped: no recive subscription left (UNSUBSCRIBE); "
                        "sync again from the same syncKey\"}");
    cr_assert(eq(str, (char *)th(frame_at(f, 2), "receipt-id"), "s"));
    cr_assert(eq(str, (char *)th(frame_at(f, 3), "receipt-id"), "u"));
    cr_assert(eq(u64, srv.metrics.deliveries, 0));
    cr_assert(eq(u32, cg_session__inflight(f->s), 0));
    cg_buf_unref(b);
}

Test(session, sync_store_failure_answers_init_status_in_order)
{
    struct fake *f = connect_for_batches();

    FEED(f, "SEND\ndestination:/socket/chat/sync\nreceipt:s\n\n{\"syncKey\":5}\0");
    answer_fetch_err(0, CG_E_STORE);
    pump(f);
    cr_assert(eq(sz, f->nframes, 3));
    expect_batch_failed(f, 0, "{\"code\":503,\"status\":\"失败\","
                        "\"content\":\"sync failed: store unavailable\"}");
    cr_assert(eq(str, (char *)th(frame_at(f, 2), "receipt-id"), "s"));
    cr_assert(eq(u32, cg_session__inflight(f->s), 0));
}

Test(session, sync_with_a_bad_body_is_400)
{
    struct fake *f = connect12();

    subscribe(f, "r", "/user/alice/recive", "auto");
    subscribe(f, "st", "/user/queue/status", "auto");
    chat_w.mode = MODE_HOLD;
    FEED(f, "SEND\ndestination:/socket/chat/sync\n\n{\"syncKey\":\"x\"}\0");
    pump(f);
    cr_assert(eq(sz, chat_w.n, 0));
    cr_assert(not(eq(ptr, strstr(f->frames[0].body, "\"code\":400"), NULL)));
}

/* ------------------------------------------------------------------------ */
/* Token expiry                                                              */
/* ------------------------------------------------------------------------ */

/* CONNECT as alice with a token valid until expires_ms (wall clock). */
static struct fake *
connect_until(int64_t expires_ms)
{
    struct fake *f = new_fake();
    struct cg_principal who = alice;

    who.expires_ms = expires_ms;
    FEED(f, "CONNECT\naccept-version:1.2\nheart-beat:0,0\npasscode:" TOKEN "\n\n\0");
    auth_answer(0, &who);
    pump(f);
    cr_assert(eq(int, frame_at(f, 0)->cmd, STOMP_CMD_CONNECTED));
    frames_clear(f);
    return f;
}

Test(session, expired_token_closes_the_session_with_error_401)
{
    uint64_t t0 = uv_now(&loop);
    int64_t w0 = cg_now_ms();
    struct fake *f = connect_until(w0 + 1000);
    /* The session turns the expiry into loop time at the token check, at
     * some wall time in [w0, now]: its deadline is no earlier than
     * t0 + 1000 - early. */
    uint64_t early = (uint64_t)(cg_now_ms() - w0);
    struct fake *g = connect_until(cg_now_ms() + 600000);

    subscribe(f, "st", "/user/queue/status", "auto");
    run_for(300);
    pump(f);
    /* Nothing yet, unless a stalled machine let the expiry pass. */
    cr_assert(f->nframes == 0 || loop_since(t0) + early >= 1000, "%zu frames after %llu ms",
              f->nframes, (unsigned long long)loop_since(t0));
    cr_assert(wants_close(f, NULL) == 0 || loop_since(t0) + early >= 1000,
              "closed after %llu ms", (unsigned long long)loop_since(t0));
    run_for(900);                                   /* past the expiry */
    expect_error(f, "401 token expired: log in again", 1008);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(str, frame_at(f, 0)->body, "the login token of this session expired; "
                 "log in again and reconnect with the new token"));
    cr_assert(eq(u64, srv.metrics.stomp_errors, 1));
    /* a session whose token is still valid is untouched */
    cr_assert(eq(int, wants_close(g, NULL), 0));
    subscribe(g, "st", "/user/queue/status", "auto");
    FEED(g, "SEND\ndestination:/x\nreceipt:alive\n\n\0");
    pump(g);
    cr_assert(eq(sz, g->nframes, 2));
    cr_assert(eq(str, (char *)th(frame_at(g, 1), "receipt-id"), "alive"));
}

Test(session, token_that_expires_while_connecting_is_cut_at_once)
{
    struct fake *f = connect_until(cg_now_ms() - 1);

    run_for(10);
    expect_error(f, "401 token expired: log in again", 1008);
}

/* ------------------------------------------------------------------------ */
/* Closing and lifetime                                                      */
/* ------------------------------------------------------------------------ */

Test(session, close_request_flushes_then_reports_wants_close)
{
    struct fake *f = connect12();
    int code;

    subscribe(f, "st", "/user/queue/status", "auto");
    FEED(f, "SEND\ndestination:/x\n\n\0");
    cg_session_close(f->s, 1001, "server shutting down");
    cg_session_close(f->s, 1008, "second close is ignored");
    cr_assert(eq(int, wants_close(f, NULL), 0));    /* one frame still queued */
    cr_assert(eq(int, f->paused, 1));
    cr_assert(eq(int, cg_session_on_bytes(f->s, "\n", 1), CG_E_CLOSED));
    pump(f);
    cr_assert(eq(sz, f->nframes, 1));
    cr_assert(eq(int, wants_close(f, &code), 1));
    cr_assert(eq(int, code, 1001));
}

Test(session, close_flush_that_never_completes_is_cut)
{
    struct fake *f;

    cfg.frame_timeout_ms = 30;
    f = connect12();
    subscribe(f, "st", "/user/queue/status", "auto");
    FEED(f, "SEND\ndestination:/x\n\n\0");
    cg_session_close(f->s, 1001, "bye");
    run_for(50);                                   /* the peer never reads */
    cr_assert(eq(int, f->ops_closed, 1));
    cr_assert(eq(int, f->close_code, 1001));
}

Test(session, session_outlives_on_closed_while_referenced)
{
    struct fake *f = connect12();
    cg_session *s = f->s;
    uint64_t id = cg_session_id(s);

    cg_session_ref(s);
    transport_closed(f);
    cr_assert(eq(ptr, cg_session_lookup(&srv, id), NULL));
    uv_run(&loop, UV_RUN_NOWAIT);                  /* the timer closes */
    cr_assert(eq(u64, cg_session_id(s), id));      /* ASan: still valid */
    cg_session_close(s, 1000, "no-op after close");
    cg_session_deliver(s, CG_TOPIC_RECIVE, NULL, 1, 1, 0);
    cg_session_unref(s);                           /* freed here */
}

Test(session, idle_session_holds_no_buffers)
{
    struct fake *f = connect12();

    subscribe(f, "r", "/user/alice/recive", "auto");
    subscribe(f, "st", "/user/queue/status", "auto");
    subscribe(f, "ss", "/user/queue/send/status", "auto");
    subscribe(f, "rs", "/user/queue/recive/status", "auto");
    pump(f);
    cr_assert(eq(sz, cg_session__input_capacity(f->s), 0));
    cr_assert(eq(sz, cg_session_queued_bytes(f->s), 0));
    /* The session itself stays small: the 8 KiB budget per idle
     * connection also has to pay for lws and the transport. */
    cr_assert(le(sz, cg_session__sizeof(), (size_t)1024), "sizeof = %zu",
              cg_session__sizeof());
}

Test(session, metrics_track_connections_and_bytes)
{
    struct fake *f = connect12();

    cr_assert(eq(u64, srv.metrics.connections[CG_TR_WS], 1));
    cr_assert(eq(u64, srv.metrics.connections_total[CG_TR_WS], 1));
    cr_assert(gt(u64, srv.metrics.bytes_in, 0));
    cr_assert(gt(u64, srv.metrics.bytes_out, 0));
    cr_assert(eq(u64, srv.metrics.frames_out, 1));
    transport_closed(f);
    cr_assert(eq(u64, srv.metrics.connections[CG_TR_WS], 0));
}

/* Fail each allocation of a CONNECT / SUBSCRIBE / SEND / push scenario in
 * turn (the n-th and every later one): every failure must end in a clean
 * close or a dropped message, never a crash or a leak (ASan's leak check
 * runs at exit). Returns 1 when the scenario ran to the end unharmed, which
 * happens once n is past its last allocation. */
static int
scenario(void)
{
    struct stomp_limits lim = { 1 << 20, 64, 1 << 16, 1 << 20 };
    struct fake *f;
    int n, rounds = 0, full;

    f = calloc(1, sizeof *f);
    cg_wbuf_init(&f->out, 0);
    stomp_parser_init(&f->p, &lim);
    f->s = cg_session_create(&srv, &fake_ops, f, &(struct cg_session_open){ 0 });
    if (f->s == NULL) {
        free(f);
        return 0;
    }
    FEED(f, "CONNECT\naccept-version:1.2\npasscode:" TOKEN "\n\n\0");
    if (auth_w.cb)
        auth_answer(0, &alice);
    uv_run(&loop, UV_RUN_NOWAIT);
    FEED(f, "SUBSCRIBE\nid:r\ndestination:/user/alice/recive\n\n\0"
            "SUBSCRIBE\nid:ss\ndestination:/user/queue/send/status\n\n\0"
            "SUBSCRIBE\nid:d\ndestination:/user/queue/delivered\n\n\0"
            "SEND\ndestination:/socket/chat/send\nreceipt:x\n\n"
            "{\"msgID\":\"0123456789abcdef\",\"reciverId\":2,\"content\":\"hi\"}\0");
    uv_run(&loop, UV_RUN_NOWAIT);                  /* the 503, on the next turn */
    push(7, "M1:1:{\"id\":1}");
    push(7, "D{}");
    while ((n = cg_session_pop_frame(f->s, &f->out)) != 0 && rounds++ < 100)
        ;
    f->store = 0;
    parse_out(f);
    full = f->count[STOMP_CMD_CONNECTED] == 1 && f->count[STOMP_CMD_RECEIPT] == 1 &&
           f->count[STOMP_CMD_MESSAGE] == 3 && f->count[STOMP_CMD_ERROR] == 0;
    cg_session_on_closed(f->s);
    uv_run(&loop, UV_RUN_NOWAIT);
    cg_wbuf_cleanup(&f->out);
    free(f);
    return full;
}

Test(session, allocation_failures_are_clean)
{
    unsigned long n;
    int full = 0;

    chat_w.mode = MODE_REAL;                       /* sends are refused 503 */
    for (n = 1; n < 1000 && !full; n++) {
        memset(&auth_w, 0, sizeof auth_w);
        cg_alloc_fail_after(n);
        full = scenario();
        cg_alloc_fail_after(0);
        cr_assert(eq(sz, cg_registry_count(srv.registry), 0), "n=%lu", n);
        cr_assert(eq(sz, cg_registry_user_sessions(srv.registry, 7), 0), "n=%lu", n);
    }
    cr_assert(eq(int, full, 1), "the scenario never completed");
    cr_assert(gt(u64, n, 20));                     /* it did fail a few times */
}

/* ------------------------------------------------------------------------ */
/* Registry                                                                  */
/* ------------------------------------------------------------------------ */

/* max_user_sessions: the attach of one session too many is refused at
 * CONNECT with an ERROR naming the limit; a closed session makes room. */
Test(registry, sessions_of_a_user_past_max_user_sessions_are_refused)
{
    struct fake *f1, *f2, *f3;

    cfg.max_user_sessions = 2;
    f1 = connect12();
    f2 = connect12();
    f3 = new_fake();
    sendf(f3, "CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\npasscode:" TOKEN "\n\n");
    auth_answer(0, &alice);
    expect_error(f3, "user has 2 sessions here (max_user_sessions)", 1008);
    cr_assert(eq(int, wants_close(f2, NULL), 0));
    transport_closed(f1);
    (void)connect12();
}

/* cg_session_admit(): 429 once an address has max_addr_connections
 * sessions (every fake comes from 127.0.0.1:5555), 503 while the heap is
 * over memory_budget_bytes; a closed session makes room. */
Test(registry, admit_counts_sessions_by_address_and_checks_the_memory_budget)
{
    const char *why = NULL;
    struct fake *f1;

    cfg.max_addr_connections = 2;
    cr_assert(eq(int, cg_session_admit(&srv, "127.0.0.1:5555", &why), 0));
    f1 = new_fake();
    (void)new_fake();
    cr_assert(eq(int, cg_session_admit(&srv, "127.0.0.1:5555", &why), 429));
    cr_assert(eq(str, (char *)why,
                 "too many connections from this address (max_addr_connections)"));
    cr_assert(eq(int, cg_session_admit(&srv, "10.0.0.1", &why), 0));
    transport_closed(f1);
    cr_assert(eq(int, cg_session_admit(&srv, "127.0.0.1:5555", &why), 0));

    cfg.memory_budget_bytes = 1;
    cr_assert(eq(int, cg_session_admit(&srv, "10.0.0.1", &why), 503));
    cr_assert(eq(str, (char *)why, "server busy: memory budget exceeded (memory_budget_bytes)"));
    cfg.memory_budget_bytes = 0;
    cr_assert(eq(int, cg_session_admit(&srv, "10.0.0.1", &why), 0));
}

Test(registry, ids_are_never_reused)
{
    struct fake *f = new_fake(), *g;
    uint64_t a = cg_session_id(f->s);

    transport_closed(f);
    cr_assert(eq(ptr, cg_session_lookup(&srv, a), NULL));
    g = new_fake();
    cr_assert(gt(u64, cg_session_id(g->s), a));
    cr_assert(eq(ptr, cg_session_lookup(&srv, cg_session_id(g->s)), g->s));
}

Test(registry, id_map_survives_growth_and_removal)
{
    enum { N = 5000 };
    static uint64_t ids[N];
    cg_registry *r;
    size_t i;

    cr_assert(eq(int, cg_registry_create(&srv, &r), 0));
    for (i = 0; i < N; i++) {
        ids[i] = cg_registry_add(r, (cg_session *)(uintptr_t)(0x1000 + 16 * i));
        cr_assert(eq(u64, ids[i], i + 1));
    }
    for (i = 0; i < N; i += 2)
        cg_registry_remove(r, ids[i]);
    cr_assert(eq(sz, cg_registry_count(r), (size_t)N / 2));
    for (i = 0; i < N; i++) {
        void *want = i % 2 ? (void *)(uintptr_t)(0x1000 + 16 * i) : NULL;

        cr_assert(eq(ptr, (void *)cg_registry_get(r, ids[i]), want), "id %llu",
                  (unsigned long long)ids[i]);
    }
    cg_registry_remove(r, 999999);                 /* unknown: no-op */
    cg_registry_remove(r, 0);
    cr_assert(eq(sz, cg_registry_count(r), (size_t)N / 2));
    cr_assert(eq(ptr, (void *)cg_registry_get(r, 0), NULL));
    cg_registry_destroy(r);
}

static int attach_calls, attach_err;

static void
on_attach(uint64_t sid, int err, void *data)
{
    (void)sid;
    (void)data;
    attach_calls++;
    attach_err = err;
}

Test(registry, attach_without_a_store_is_immediate_and_detach_forgets)
{
    cg_registry *r = srv.registry;

    cr_assert(eq(int, cg_registry_attach(r, 100, 42, on_attach, NULL), 0));
    cr_assert(eq(int, attach_calls, 1));
    cr_assert(eq(int, attach_err, 0));
    cr_assert(eq(int, cg_registry_attach(r, 101, 42, on_attach, NULL), 0));
    cr_assert(eq(int, cg_registry_attach(r, 101, 42, on_attach, NULL), 0));   /* twice */
    cr_assert(eq(sz, cg_registry_user_sessions(r, 42), 2));
    cg_registry_detach(r, 100, 42);
    cr_assert(eq(sz, cg_registry_user_sessions(r, 42), 1));
    cg_registry_detach(r, 101, 42);
    cg_registry_detach(r, 101, 42);
    cr_assert(eq(sz, cg_registry_user_sessions(r, 42), 0));
    cg_registry_detach(r, 1, 999);                 /* unknown user */
}

Test(registry, many_users_spread_over_buckets)
{
    cg_registry *r = srv.registry;
    uint64_t u;

    for (u = 1; u <= 2000; u++)
        cr_assert(eq(int, cg_registry_attach(r, u, u, on_attach, NULL), 0));
    for (u = 1; u <= 2000; u++)
        cr_assert(eq(sz, cg_registry_user_sessions(r, u), 1));
    for (u = 1; u <= 2000; u++)
        cg_registry_detach(r, u, u);
    cr_assert(eq(sz, cg_registry_user_sessions(r, 7), 0));
}

static void
close_each(cg_session *s, void *data)
{
    (*(int *)data)++;
    cg_session_close(s, 1001, "server shutting down");
}

Test(registry, foreach_visits_every_session)
{
    struct fake *f = connect12(), *g = connect12();
    int n = 0;

    cg_registry_foreach(srv.registry, close_each, &n);
    cr_assert(eq(int, n, 2));
    cr_assert(eq(int, wants_close(f, NULL), 1));
    cr_assert(eq(int, wants_close(g, NULL), 1));
}

/* ------------------------------------------------------------------------ */
/* The long link (session_ll.c): the same sessions, packets instead of frames */
/* ------------------------------------------------------------------------ */

struct lpk {
    uint32_t op, seq;
    char     body[512];
};

static struct lpk lpks[256];
static size_t nlpk;

static struct fake *
ll_fake(void)
{
    struct cg_session_open open = { .proto = CG_PROTO_LONGLINK };
    struct fake *f;

    cr_assert(lt(sz, nfakes, (size_t)MAX_FAKES));
    f = calloc(1, sizeof *f);
    cr_assert(not(eq(ptr, f, NULL)));
    cg_wbuf_init(&f->out, 0);
    f->s = cg_session_create(&srv, &fake_ops, f, &open);
    cr_assert(not(eq(ptr, f->s, NULL)));
    fakes[nfakes++] = f;
    nlpk = 0;
    return f;
}

/* Pop until dry, as transport_ll.c does, then the close packet when the
 * session wants to close; parse every packet into lpks. */
static void
ll_pump(struct fake *f)
{
    struct ll_parser p;
    struct ll_packet pk;
    size_t off = 0;
    int n, code;
    const char *why;

    while ((n = cg_session_pop_frame(f->s, &f->out)) > 0)
        ;
    cr_assert(eq(int, n, 0));
    if (cg_session_wants_close(f->s, &code, &why))
        cr_assert(gt(int, cg_session_close_packet(f->s, code, NULL, &f->out), 0));
    ll_parser_init(&p, NULL);
    while (off < f->out.len) {
        ssize_t r = ll_parse(&p, cg_wbuf_data(&f->out) + off, f->out.len - off, &pk);

        cr_assert(gt(sz, r, 0), "the session wrote a bad packet: %s", ll_strerror((int)r));
        cr_assert(lt(sz, nlpk, sizeof lpks / sizeof lpks[0]));
        lpks[nlpk].op = pk.op;
        lpks[nlpk].seq = pk.seq;
        snprintf(lpks[nlpk].body, sizeof lpks[nlpk].body, "%.*s", (int)pk.body_len, pk.body);
        nlpk++;
        off += (size_t)r;
    }
    cg_wbuf_reset(&f->out);
}

static void
ll_send(struct fake *f, uint32_t op, uint32_t seq, const char *body)
{
    char buf[1024];
    ssize_t n = ll_encode(buf, sizeof buf, op, seq, body, strlen(body));

    cr_assert(gt(sz, n, 0));
    feed(f, buf, (size_t)n);
}

static void
expect_pk(size_t i, uint32_t op, uint32_t seq, const char *body)
{
    cr_assert(lt(sz, i, nlpk), "expected at least %zu packets, got %zu", i + 1, nlpk);
    cr_assert(eq(str, (char *)ll_op_name(lpks[i].op), (char *)ll_op_name(op)), "packet %zu", i);
    cr_assert(eq(u32, lpks[i].seq, seq), "packet %zu", i);
    if (body != NULL)
        cr_assert(eq(str, lpks[i].body, (char *)body), "packet %zu", i);
}

/* A long-link session authenticated as alice with auth #1; lpks cleared. */
static struct fake *
ll_connected(void)
{
    struct fake *f = ll_fake();

    ll_send(f, LL_OP_AUTH, 1, "{\"token\":\"" TOKEN "\"}");
    cr_assert(eq(str, auth_w.token, TOKEN));
    auth_answer(0, &alice);
    ll_pump(f);
    cr_assert(eq(sz, nlpk, 1));
    expect_pk(0, LL_OP_AUTH_ANSWER, 1,
              "{\"code\":200,\"uid\":7,\"username\":\"alice\",\"heartbeatMs\":10000}");
    cr_assert(eq(u64, cg_session_uid(f->s), 7));
    nlpk = 0;
    return f;
}

Test(session, longlink_answers_carry_their_request_in_request_order)
{
    struct fake *f = ll_connected();

    chat_w.mode = MODE_HOLD;
    ll_send(f, LL_OP_SEND, 5, "{\"msgID\":\"abcdefgh\",\"reciverId\":2,\"content\":\"x\"}");
    ll_send(f, LL_OP_CONFIRM, 6, "{\"msgID\":\"abcdefgh\"}");
    ll_send(f, LL_OP_HEARTBEAT, 7, "");
    cr_assert(eq(sz, chat_w.n, 2));
    cr_assert(eq(chr, chat_w.v[0].kind, 'S'));
    cr_assert(eq(chr, chat_w.v[1].kind, 'R'));
    answer(1, CG_TOPIC_RECIVE_STATUS, "{\"code\":200,\"n\":2}");   /* out of order */
    ll_pump(f);
    cr_assert(eq(sz, nlpk, 0), "nothing passes the send still in Redis");
    answer(0, CG_TOPIC_SEND_STATUS, "{\"code\":200,\"n\":1}");
    ll_pump(f);
    cr_assert(eq(sz, nlpk, 3));
    expect_pk(0, LL_OP_SEND_STATUS, 5, "{\"code\":200,\"n\":1}");
    expect_pk(1, LL_OP_CONFIRM_STATUS, 6, "{\"code\":200,\"n\":2}");
    expect_pk(2, LL_OP_HEARTBEAT_ANSWER, 7, "");
}

Test(session, longlink_init_pushes_then_ends_with_its_sequence)
{
    struct fake *f = ll_connected();
    struct cg_buf *b = cg_buf_create("{\"id\":1}", 8);
    struct cg_chat_item items[2] = { { 1, 1, 1, b }, { 2, 1, 0, b } };

    chat_w.mode = MODE_HOLD;
    ll_send(f, LL_OP_INIT, 9, "");
    ll_send(f, LL_OP_SYNC, 10, "{\"syncKey\":1}");
    cr_assert(eq(sz, chat_w.n, 2));
    cr_assert(eq(int, chat_w.v[1].sync, 1));
    answer_fetch(1, items + 1, 1, 0);               /* the sync */
    answer_fetch(0, items, 2, 0);                   /* the init, all of it */
    ll_pump(f);
    cr_assert(eq(sz, nlpk, 5));
    expect_pk(0, LL_OP_PUSH, 0, "{\"id\":1}");    /* the sync's message */
    expect_pk(1, LL_OP_SYNC_END, 10, NULL);
    cr_assert(not(zero(ptr, strstr(lpks[1].body, "\"syncKey\":2"))), "%s", lpks[1].body);
    expect_pk(2, LL_OP_PUSH_AGAIN, 0, NULL);        /* redelivered */
    expect_pk(3, LL_OP_PUSH, 0, NULL);
    expect_pk(4, LL_OP_INIT_END, 9, NULL);
    cr_assert(not(zero(ptr, strstr(lpks[4].body, "\"count\":2"))), "%s", lpks[4].body);
    cg_buf_unref(b);
}

Test(session, longlink_pushes_from_the_registry_have_sequence_0)
{
    struct fake *f = ll_connected();
    struct cg_buf *b = cg_buf_create("{\"id\":3}", 8);

    cg_session_deliver(f->s, CG_TOPIC_RECIVE, b, 3, 1, 0);
    cg_session_deliver(f->s, CG_TOPIC_DELIVERED, b, 0, 1, 0);
    cg_session_deliver(f->s, CG_TOPIC_STATUS, b, 0, 1, 0);   /* no such packet */
    ll_pump(f);
    cr_assert(eq(sz, nlpk, 2));
    expect_pk(0, LL_OP_PUSH, 0, "{\"id\":3}");
    expect_pk(1, LL_OP_DELIVERED, 0, "{\"id\":3}");
    cg_buf_unref(b);
}

struct ll_close_row {
    char     name[40];
    int      authed;
    uint32_t op;
    char     body[64];
    int      code;
    char     reason[64];
};

ParameterizedTestParameters(session, longlink_faults_end_with_a_close_packet)
{
    static struct ll_close_row rows[] = {
        { "send before auth", 0, LL_OP_SEND, "{}", 1008, "401 unauthorized" },
        { "auth body not JSON", 0, LL_OP_AUTH, "token", 1008, "401 unauthorized" },
        { "auth with another member", 0, LL_OP_AUTH, "{\"token\":\"x\",\"a\":1}", 1008,
          "401 unauthorized" },
        { "malformed token", 0, LL_OP_AUTH, "{\"token\":\"short\"}", 1008, "401 unauthorized" },
        { "a server operation", 0, LL_OP_PUSH, "{}", 1002, "push is sent by the server only" },
        { "a second auth", 1, LL_OP_AUTH, "{}", 1002,
          "auth again on an authenticated connection" },
        { "a server answer after auth", 1, LL_OP_SEND_STATUS, "", 1002,
          "send_status is sent by the server only" },
    };

    return cr_make_param_array(struct ll_close_row, rows, sizeof rows / sizeof rows[0]);
}

ParameterizedTest(struct ll_close_row *row, session, longlink_faults_end_with_a_close_packet)
{
    struct fake *f = row->authed ? ll_connected() : ll_fake();
    char want[160];

    ll_send(f, row->op, 3, row->body);
    ll_pump(f);
    cr_assert(eq(sz, nlpk, 1), "%s", row->name);
    snprintf(want, sizeof want, "{\"code\":%d,\"reason\":\"%s\"}", row->code, row->reason);
    expect_pk(0, LL_OP_CLOSE, 0, want);
    cr_assert(eq(int, auth_w.calls, row->authed), "%s: no token check", row->name);
}

Test(session, longlink_framing_errors_and_limits_close_with_their_reason)
{
    struct fake *f = ll_fake();
    static const char stomp[] = "CONNECT\naccept-version:1.2\n\n";
    char want[160];

    /* STOMP on the long link: "CONN" read as a length is far over the
     * limit before auth, and refused on those 4 bytes. */
    feed(f, stomp, 4);
    ll_pump(f);
    snprintf(want, sizeof want, "{\"code\":1008,\"reason\":\"packet exceeds %lld bytes "
             "before auth (unauth_max_frame_bytes)\"}", (long long)cfg.unauth_max_frame_bytes);
    expect_pk(0, LL_OP_CLOSE, 0, want);

    f = ll_fake();
    {
        unsigned char h[16];

        cr_assert(eq(int, ll_encode_header(h, LL_OP_HEARTBEAT, 1, 0), 16));
        h[7] = 2;                                   /* version 2 */
        feed(f, h, sizeof h);
    }
    ll_pump(f);
    expect_pk(0, LL_OP_CLOSE, 0, "{\"code\":1002,\"reason\":\"unknown protocol version\"}");
}

Test(session, longlink_output_cap_closes_at_once_with_1013)
{
    struct fake *f;
    uint64_t i;
    char want[96];

    cfg.out_max_bytes = 65536;
    cfg.out_soft_bytes = 65536;
    f = ll_connected();
    for (i = 1; i <= 100 && !f->ops_closed; i++)
        push_big(i, 1024);                          /* through the registry */
    cr_assert(eq(int, f->ops_closed, 1));
    cr_assert(eq(int, f->close_code, 1013));
    cr_assert(lt(u64, i, 100));
    cr_assert(eq(u64, srv.metrics.output_cap_closes, 1));
    cr_assert(eq(sz, cg_session_queued_bytes(f->s), 0));
    /* What transport_ll.c writes for ops->close. */
    cg_wbuf_reset(&f->out);
    cr_assert(gt(int, cg_session_close_packet(f->s, f->close_code, f->why, &f->out), 0));
    nlpk = 0;
    {
        struct ll_parser p;
        struct ll_packet pk;

        ll_parser_init(&p, NULL);
        cr_assert(gt(sz, ll_parse(&p, cg_wbuf_data(&f->out), f->out.len, &pk), 0));
        snprintf(want, sizeof want, "%.*s", (int)pk.body_len, pk.body);
        cr_assert(eq(u32, pk.op, LL_OP_CLOSE));
        cr_assert(eq(str, want, "{\"code\":1013,\"reason\":\"output queue over limit\"}"));
    }
}
