/* test_chat_json.c - chat.c without Redis: the exact bytes of every
 * rendered body, and the validation of send / recive / sync bodies.
 *
 * The store is real but never connected (its socket does not exist), so
 * every valid request is refused 503 "store unavailable, retry" at once,
 * and every invalid one with its own code: the validation table below is
 * one row per rule, at N and N+1 where the rule is a limit. A refused
 * request is answered on the next loop turn, never inside cg_chat_send()
 * or cg_chat_recive() (chat.h), which every test checks (next_turn()). */
#include "fmacros.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
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

/* ---- environment ------------------------------------------------------ */

static struct {
    uv_loop_t         loop;
    struct cg_config  cfg;
    struct cg_metrics m;
    cg_store         *st;
    cg_chat          *chat;
    int               up;
} E;

static void
setup(void)
{
    memset(&E, 0, sizeof E);
    cg_log_set_level(CG_LOG_ERROR);
    E.cfg.redis_url = "unix:///nonexistent/chatgate-test.sock";
    cg_test_redis_url(&E.cfg, E.cfg.redis_url);
    E.cfg.redis_timeout_ms = 1000;
    E.cfg.redis_reconnect_max_ms = 1000;
    E.cfg.max_content_bytes = 16384;
    E.cfg.send_rate = 50;
    E.cfg.send_burst = 100;
    E.cfg.max_pending = 100000;
    E.cfg.history_max = 1000;
    cr_assert(eq(int, uv_loop_init(&E.loop), 0));
    cr_assert(eq(int, cg_store_create(&E.loop, &E.cfg, &E.m, &E.st), 0));
    cr_assert(eq(int, cg_chat_create(&E.cfg, E.st, &E.m, &E.chat), 0));
    E.up = 1;
}

static void
teardown_impl(int check)
{
    int rc;

    if (!E.up)
        return;
    E.up = 0;
    cg_chat_destroy(E.chat);
    cg_store_close(E.st, NULL, NULL);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&E.loop);
    cg_test_redis_url_done(&E.cfg);
    if (check)
        cr_assert(eq(int, rc, 0), "every handle must be closed");
}

/* End of every test that used setup(): Criterion does not fail a test for
 * assertions in .fini, so the shutdown is checked in the test body. */
static void
finish(void)
{
    teardown_impl(1);
}

/* .fini: cleanup after a failed assertion. */
static void
teardown(void)
{
    teardown_impl(0);
}

struct ans {
    int                called;
    int                err;
    enum cg_chat_topic topic;
    char              *body;
    uint64_t           sid;
};

static void
on_done(uint64_t sid, void *ticket, int err, enum cg_chat_topic topic,
        struct cg_buf *body, void *data)
{
    struct ans *a = ticket;

    cr_assert(data == &E);
    a->called++;
    a->err = err;
    a->topic = topic;
    a->sid = sid;
    a->body = body ? strndup(body->data, body->len) : NULL;
    cg_buf_unref(body);
}

static const struct cg_chat_caller ALICE = { .sid = 42, .uid = 1, .name = "alice" };

/* Right after a request returned 0: no answer yet (a callback never runs
 * inside the call that asked for it), then exactly one on the next turn. */
static void
next_turn(const struct ans *a)
{
    cr_assert(eq(int, a->called, 0), "answered inside the call");
    uv_run(&E.loop, UV_RUN_NOWAIT);
    cr_assert(eq(int, a->called, 1), "answered on the next loop turn, exactly once");
}

static void
send_body(struct cg_chat_conn *conn, const char *body, size_t len, struct ans *a)
{
    memset(a, 0, sizeof *a);
    cr_assert(eq(int, cg_chat_send(E.chat, conn, &ALICE, body, len, on_done, a, &E), 0));
    next_turn(a);
    cr_assert(eq(int, a->err, 0));
    cr_assert(eq(u64, a->sid, 42));
    cr_assert(eq(int, a->topic, CG_TOPIC_SEND_STATUS));
    cr_assert(a->body != NULL);
}

/* code and msgID ("" when absent) of a status body. */
static int
status_of(const char *body, char *msgid, size_t cap)
{
    json_t *o = json_loads(body, 0, NULL);
    json_t *v;
    int code;

    cr_assert(o != NULL, "status must be JSON: %s", body);
    code = (int)json_integer_value(json_object_get(o, "code"));
    v = json_object_get(o, "msgID");
    snprintf(msgid, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
    cr_assert(eq(str, (char *)json_string_value(json_object_get(o, "status")),
                 code == 200 ? "成功" : "失败"));
    v = json_object_get(o, "content");
    cr_assert(v != NULL && json_typeof(v) == JSON_STRING);
    json_decref(o);
    return code;
}

/* ---- rendering: exact bytes ------------------------------------------- */

static void
assert_buf(struct cg_buf *b, const char *expect)
{
    cr_assert(b != NULL);
    cr_assert(eq(sz, b->len, strlen(expect)));
    cr_assert(eq(str, b->data, (char *)expect));
    cr_assert(eq(int, b->data[b->len], '\0'));
    cg_buf_unref(b);
}

Test(chat_render, status_ok_with_msgid)
{
    assert_buf(cg_chat_render_status(200, "abcdefgh", 8, "ok"),
               "{\"msgID\":\"abcdefgh\",\"code\":200,\"status\":\"成功\",\"content\":\"ok\"}");
}

Test(chat_render, status_failure_without_msgid)
{
    assert_buf(cg_chat_render_status(400, NULL, 0, "unknown destination"),
               "{\"code\":400,\"status\":\"失败\",\"content\":\"unknown destination\"}");
}

Test(chat_render, status_escapes_msgid_and_content)
{
    assert_buf(cg_chat_render_status(404, "a\"b\\c", 5, "line\nbreak \"q\" \x01 /"),
               "{\"msgID\":\"a\\\"b\\\\c\",\"code\":404,\"status\":\"失败\","
               "\"content\":\"line\\nbreak \\\"q\\\" \\u0001 /\"}");
    /* The length counts, not a NUL. */
    assert_buf(cg_chat_render_status(413, "ab\0cd", 5, NULL),
               "{\"msgID\":\"ab\\u0000cd\",\"code\":413,\"status\":\"失败\",\"content\":\"\"}");
}

Test(chat_render, send_ok_carries_id_and_time)
{
    assert_buf(cg_chat_render_send_ok("0123456789abcdef0123456789abcdef01234567", 40, 255,
                                      1504712402000LL),
               "{\"msgID\":\"0123456789abcdef0123456789abcdef01234567\",\"code\":200,"
               "\"status\":\"成功\",\"content\":\"ok\",\"id\":255,\"time\":1504712402000}");
    assert_buf(cg_chat_render_send_ok("abcdefgh", 8, UINT64_MAX, 0),
               "{\"msgID\":\"abcdefgh\",\"code\":200,\"status\":\"成功\",\"content\":\"ok\","
               "\"id\":18446744073709551615,\"time\":0}");
}

Test(chat_render, init_status_with_and_without_more)
{
    assert_buf(cg_chat_render_init_status(3, 17, -1),
               "{\"code\":200,\"count\":3,\"syncKey\":17}");
    assert_buf(cg_chat_render_init_status(100, 255, 1),
               "{\"code\":200,\"count\":100,\"syncKey\":255,\"more\":true}");
    assert_buf(cg_chat_render_init_status(0, 0, 0),
               "{\"code\":200,\"count\":0,\"syncKey\":0,\"more\":false}");
}

Test(chat_route, maps_the_four_destinations_exactly)
{
#define R(s) cg_chat_route((s), sizeof(s) - 1)
    cr_assert(eq(int, R("/socket/chat/send"), CG_CHAT_SEND));
    cr_assert(eq(int, R("/socket/chat/recive"), CG_CHAT_RECIVE));
    cr_assert(eq(int, R("/socket/chat/init"), CG_CHAT_INIT));
    cr_assert(eq(int, R("/socket/chat/sync"), CG_CHAT_SYNC));
    cr_assert(eq(int, R("/socket/chat/sen"), CG_CHAT_UNKNOWN));
    cr_assert(eq(int, R("/socket/chat/send/"), CG_CHAT_UNKNOWN));
    cr_assert(eq(int, R("/socket/chat/receive"), CG_CHAT_UNKNOWN));
    cr_assert(eq(int, R("/Mimi/socket/chat/send"), CG_CHAT_UNKNOWN));
    cr_assert(eq(int, R(""), CG_CHAT_UNKNOWN));
    /* Length-delimited: bytes after len are not looked at. */
    cr_assert(eq(int, cg_chat_route("/socket/chat/sendXX", 17), CG_CHAT_SEND));
#undef R
}

/* ---- send validation table --------------------------------------------- */

/* body may hold one "%s" where fill (repeated fill_n times) is put.
 * Parameters are copied into the test's process, so they hold arrays, not
 * pointers (Criterion runs each test in a fresh process). */
struct send_case {
    char   name[40];
    char   body[200];
    char   fill[8];
    size_t fill_n;
    int    code;
    char   msgid[72];       /* expected msgID in the answer, "" = none */
};

#define ID8  "abcdefgh"
#define ID64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OK_REST ",\"reciverId\":2,\"content\":\"hi\"}"

ParameterizedTestParameters(chat_send, validation)
{
    static struct send_case cases[] = {
        { "valid", "{\"msgID\":\"" ID8 "\"" OK_REST, "", 0, 503, ID8 },
        { "msgID 7 chars", "{\"msgID\":\"abcdefg\"" OK_REST, "", 0, 400, "" },
        { "msgID 8 chars", "{\"msgID\":\"abcdefgh\"" OK_REST, "", 0, 503, ID8 },
        { "msgID 64 chars", "{\"msgID\":\"" ID64 "\"" OK_REST, "", 0, 503, ID64 },
        { "msgID 65 chars", "{\"msgID\":\"" ID64 "x\"" OK_REST, "", 0, 400, "" },
        { "msgID with space", "{\"msgID\":\"abcd efgh\"" OK_REST, "", 0, 400, "" },
        { "msgID with !", "{\"msgID\":\"abcdefg!\"" OK_REST, "", 0, 400, "" },
        { "msgID non-ASCII", "{\"msgID\":\"abcdéfgh\"" OK_REST, "", 0, 400, "" },
        { "msgID with _ and -", "{\"msgID\":\"A_b-9_Z-\"" OK_REST, "", 0, 503, "A_b-9_Z-" },
        { "msgID a number", "{\"msgID\":12345678" OK_REST, "", 0, 400, "" },
        { "msgID missing", "{\"reciverId\":2,\"content\":\"hi\"}", "", 0, 400, "" },
        { "reciverId missing", "{\"msgID\":\"" ID8 "\",\"content\":\"hi\"}", "", 0, 400, ID8 },
        { "receiverId alias", "{\"msgID\":\"" ID8 "\",\"receiverId\":2,\"content\":\"hi\"}",
          "", 0, 503, ID8 },
        { "both ids agree", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"receiverId\":\"2\","
          "\"content\":\"hi\"}", "", 0, 503, ID8 },
        { "both ids differ", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"receiverId\":3,"
          "\"content\":\"hi\"}", "", 0, 400, ID8 },
        { "string id", "{\"msgID\":\"" ID8 "\",\"reciverId\":\"2\",\"content\":\"hi\"}",
          "", 0, 503, ID8 },
        { "string id not digits", "{\"msgID\":\"" ID8 "\",\"reciverId\":\"2a\",\"content\":\"x\"}",
          "", 0, 400, ID8 },
        { "empty string id", "{\"msgID\":\"" ID8 "\",\"reciverId\":\"\",\"content\":\"x\"}",
          "", 0, 400, ID8 },
        { "string id negative", "{\"msgID\":\"" ID8 "\",\"reciverId\":\"-2\",\"content\":\"x\"}",
          "", 0, 400, ID8 },
        { "negative id", "{\"msgID\":\"" ID8 "\",\"reciverId\":-2,\"content\":\"x\"}",
          "", 0, 400, ID8 },
        { "zero id", "{\"msgID\":\"" ID8 "\",\"reciverId\":0,\"content\":\"x\"}",
          "", 0, 400, ID8 },
        { "fractional id", "{\"msgID\":\"" ID8 "\",\"reciverId\":2.5,\"content\":\"x\"}",
          "", 0, 400, ID8 },
        { "boolean id", "{\"msgID\":\"" ID8 "\",\"reciverId\":true,\"content\":\"x\"}",
          "", 0, 400, ID8 },
        { "id too big for JSON", "{\"msgID\":\"" ID8 "\",\"reciverId\":99999999999999999999,"
          "\"content\":\"x\"}", "", 0, 400, ID8 },
        { "largest id", "{\"msgID\":\"" ID8 "\",\"reciverId\":9223372036854775807,"
          "\"content\":\"x\"}", "", 0, 503, ID8 },
        { "string id over int64", "{\"msgID\":\"" ID8 "\",\"reciverId\":\"9223372036854775808\","
          "\"content\":\"x\"}", "", 0, 400, ID8 },
        { "senderId ignored", "{\"msgID\":\"" ID8 "\",\"senderId\":99,\"reciverId\":2,"
          "\"content\":\"hi\"}", "", 0, 503, ID8 },
        { "content missing", "{\"msgID\":\"" ID8 "\",\"reciverId\":2}", "", 0, 400, ID8 },
        { "content a number", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":5}",
          "", 0, 400, ID8 },
        { "content null", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":null}",
          "", 0, 400, ID8 },
        { "content empty", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":\"\"}",
          "", 0, 503, ID8 },
        { "content 16384 bytes", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":\"%s\"}",
          "a", 16384, 503, ID8 },
        { "content 16385 bytes", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":\"%s\"}",
          "a", 16385, 413, ID8 },
        { "content 16383 bytes of CJK", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,"
          "\"content\":\"%s\"}", "起", 5461, 503, ID8 },
        { "content 16386 bytes of CJK", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,"
          "\"content\":\"%s\"}", "起", 5462, 413, ID8 },
        { "content 16384 decoded bytes", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,"
          "\"content\":\"%s\"}", "\\n", 16384, 503, ID8 },
        { "content 16385 decoded bytes", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,"
          "\"content\":\"%s\"}", "\\u0041", 16385, 413, ID8 },
        { "lone high surrogate", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,"
          "\"content\":\"a\\ud800b\"}", "", 0, 413, ID8 },
        { "lone low surrogate", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,"
          "\"content\":\"\\udc00\"}", "", 0, 413, ID8 },
        { "surrogate pair", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,"
          "\"content\":\"\\ud83d\\ude00\"}", "", 0, 503, ID8 },
        { "raw invalid UTF-8", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,"
          "\"content\":\"a\xff\"}", "", 0, 413, ID8 },
        { "NUL escape allowed", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,"
          "\"content\":\"a\\u0000b\"}", "", 0, 503, ID8 },
        { "non-object array", "[\"" ID8 "\",2,\"hi\"]", "", 0, 400, "" },
        { "non-object string", "\"hello\"", "", 0, 400, "" },
        { "non-object number", "42", "", 0, 400, "" },
        { "empty body", "", "", 0, 400, "" },
        { "truncated", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,", "", 0, 400, ID8 },
        { "trailing garbage", "{\"msgID\":\"" ID8 "\"" OK_REST " x", "", 0, 400, ID8 },
        { "duplicate keys", "{\"msgID\":\"" ID8 "\",\"msgID\":\"ijklmnop\"" OK_REST,
          "", 0, 400, ID8 },
        { "duplicate content", "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":\"a\","
          "\"content\":\"b\"}", "", 0, 400, ID8 },
        { "whitespace around", " \n{ \"msgID\" : \"" ID8 "\" , \"reciverId\" : 2 , "
          "\"content\" : \"hi\" }\n", "", 0, 503, ID8 },
    };
    return cr_make_param_array(struct send_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct send_case *c, chat_send, validation, .init = setup, .fini = teardown)
{
    struct cg_chat_conn conn;
    struct ans a;
    char msgid[80];
    char *body;
    size_t len;

    if (c->fill[0]) {
        /* body with the placeholder "%s" replaced by fill x fill_n */
        const char *at = strstr(c->body, "%s");
        size_t fl = strlen(c->fill), pre = (size_t)(at - c->body), post = strlen(at + 2);

        len = pre + fl * c->fill_n + post;
        body = malloc(len + 1);
        memcpy(body, c->body, pre);
        for (size_t i = 0; i < c->fill_n; i++)
            memcpy(body + pre + i * fl, c->fill, fl);
        memcpy(body + pre + fl * c->fill_n, at + 2, post + 1);
    } else {
        body = strdup(c->body);
        len = strlen(body);
    }
    cg_chat_conn_init(&conn, &E.cfg);
    send_body(&conn, body, len, &a);
    cr_assert(eq(int, status_of(a.body, msgid, sizeof msgid), c->code), "%s: %s", c->name,
              a.body);
    cr_assert(eq(str, msgid, (char *)c->msgid), "%s: %s", c->name, a.body);
    if (c->code == 503)
        cr_assert(strstr(a.body, "\"content\":\"store unavailable, retry\"") != NULL);
    cr_assert(eq(u64, E.m.sends[c->code == 400 ? CG_SEND_400 : c->code == 413 ? CG_SEND_413
                                : CG_SEND_503], 1));
    free(a.body);
    free(body);
    finish();
}

Test(chat_send, reasons_name_the_rule, .init = setup, .fini = teardown)
{
    static const char big[] = "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":5}";
    struct cg_chat_conn conn;
    struct ans a;

    cg_chat_conn_init(&conn, &E.cfg);
    send_body(&conn, big, sizeof big - 1, &a);
    cr_assert(eq(str, a.body, "{\"msgID\":\"" ID8 "\",\"code\":400,\"status\":\"失败\","
                              "\"content\":\"content must be a string\"}"));
    free(a.body);
    send_body(&conn, "{\"msgID\":\"x\"}", 13, &a);
    cr_assert(eq(str, a.body, "{\"code\":400,\"status\":\"失败\",\"content\":\"msgID must be "
                              "8-64 characters of [A-Za-z0-9_-]\"}"));
    free(a.body);
    send_body(&conn, "{\"msgID\":", 9, &a);
    cr_assert(eq(str, a.body, "{\"code\":400,\"status\":\"失败\",\"content\":\"malformed JSON "
                              "at byte 9\"}"));
    free(a.body);
    finish();
}

Test(chat_send, content_limit_message_names_the_option, .init = setup, .fini = teardown)
{
    struct cg_chat_send_req req;
    char *body = malloc(17000);
    int n = snprintf(body, 17000, "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":\"%0*d\"}",
                     16385, 0);

    cr_assert(eq(int, cg_chat_decode_send(body, (size_t)n, &E.cfg, &req), 413));
    cr_assert(eq(str, (char *)req.reason, "content exceeds 16384 bytes (max_content_bytes)"));
    cg_chat_send_req_cleanup(&req);
    free(body);
    finish();
}

Test(chat_send, decode_reports_the_fields, .init = setup, .fini = teardown)
{
    static const char body[] =
        "{\"content\":\"起来聊天\",\"receiverId\":\"12\",\"msgID\":\"" ID8 "\"}";
    struct cg_chat_send_req req;

    cr_assert(eq(int, cg_chat_decode_send(body, sizeof body - 1, &E.cfg, &req), 200));
    cr_assert(eq(str, req.msgid, ID8));
    cr_assert(eq(sz, req.msgid_len, 8));
    cr_assert(eq(u64, req.reciver, 12));
    cr_assert(eq(sz, req.content_len, 12));
    cr_assert(memcmp(req.content, "起来聊天", 12) == 0);
    cg_chat_send_req_cleanup(&req);
    cg_chat_send_req_cleanup(&req);   /* idempotent */
    /* Not NUL-terminated: only len bytes are read. */
    cr_assert(eq(int, cg_chat_decode_send(body, sizeof body - 3, &E.cfg, &req), 400));
    cg_chat_send_req_cleanup(&req);
    cr_assert(eq(int, cg_chat_decode_send("", 0, &E.cfg, &req), 400));
    cg_chat_send_req_cleanup(&req);
    finish();
}

Test(chat_send, rate_limit_answers_429_past_the_burst, .init = setup, .fini = teardown)
{
    static const char body[] = "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":\"x\"}";
    struct cg_chat_conn conn;
    struct ans a;
    char msgid[80];

    E.cfg.send_rate = 1;
    E.cfg.send_burst = 2;
    cg_chat_conn_init(&conn, &E.cfg);
    for (int i = 0; i < 2; i++) {
        send_body(&conn, body, sizeof body - 1, &a);
        cr_assert(eq(int, status_of(a.body, msgid, sizeof msgid), 503));
        free(a.body);
    }
    send_body(&conn, body, sizeof body - 1, &a);
    cr_assert(eq(str, a.body, "{\"msgID\":\"" ID8 "\",\"code\":429,\"status\":\"失败\","
                              "\"content\":\"rate limit: over 1 sends per second (send_rate, "
                              "burst send_burst 2)\"}"));
    free(a.body);
    cr_assert(eq(u64, E.m.rate_limited, 1));
    cr_assert(eq(u64, E.m.sends[CG_SEND_429], 1));
    /* A second later one token is back. */
    conn.last_ms -= 1000;
    send_body(&conn, body, sizeof body - 1, &a);
    cr_assert(eq(int, status_of(a.body, msgid, sizeof msgid), 503));
    free(a.body);
    send_body(&conn, body, sizeof body - 1, &a);
    cr_assert(eq(int, status_of(a.body, msgid, sizeof msgid), 429));
    free(a.body);
    /* Malformed bodies do not use tokens. */
    conn.last_ms -= 1000;
    send_body(&conn, "nope", 4, &a);
    cr_assert(eq(int, status_of(a.body, msgid, sizeof msgid), 400));
    free(a.body);
    send_body(&conn, body, sizeof body - 1, &a);
    cr_assert(eq(int, status_of(a.body, msgid, sizeof msgid), 503));
    free(a.body);
    finish();
}

/* ---- the callback rule (STYLE.md 3) ------------------------------------ */

/* 1 while a cg_chat_* call runs: its callback must never see it. */
static int in_call;

static void
on_done_outside(uint64_t sid, void *ticket, int err, enum cg_chat_topic topic,
                struct cg_buf *body, void *data)
{
    cr_assert(eq(int, in_call, 0), "a callback ran inside the call that asked for it");
    on_done(sid, ticket, err, topic, body, data);
}

/* Every way chat.c refuses a request before Redis: 400, 413 and 429 sends,
 * 503 sends (store not ready), 400 and 503 confirmations. */
Test(chat_rule, refused_requests_are_answered_after_the_call_returned, .init = setup,
     .fini = teardown)
{
    static const char *const sends[] = {
        "nope",                                                         /* 400 */
        "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":\"\\ud800\"}",  /* 413 */
        "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":\"x\"}",       /* 503 */
        "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":\"x\"}",       /* 429 */
    };
    static const int codes[] = { 400, 413, 503, 429 };
    struct cg_chat_conn conn;
    struct ans a[6];
    char msgid[80];
    int rc;

    E.cfg.send_rate = 1;
    E.cfg.send_burst = 1;
    cg_chat_conn_init(&conn, &E.cfg);
    memset(a, 0, sizeof a);
    for (size_t i = 0; i < 4; i++) {
        in_call = 1;
        rc = cg_chat_send(E.chat, &conn, &ALICE, sends[i], strlen(sends[i]), on_done_outside,
                          &a[i], &E);
        in_call = 0;
        cr_assert(eq(int, rc, 0));
    }
    in_call = 1;
    rc = cg_chat_recive(E.chat, &ALICE, "nope", 4, 0, on_done_outside, &a[4], &E);
    in_call = 0;
    cr_assert(eq(int, rc, 0));
    in_call = 1;
    rc = cg_chat_recive(E.chat, &ALICE, NULL, 0, 12, on_done_outside, &a[5], &E);
    in_call = 0;
    cr_assert(eq(int, rc, 0));
    for (size_t i = 0; i < 6; i++)
        cr_assert(eq(int, a[i].called, 0), "request %zu answered inside its call", i);

    uv_run(&E.loop, UV_RUN_NOWAIT);
    for (size_t i = 0; i < 6; i++) {
        cr_assert(eq(int, a[i].called, 1), "request %zu answered once, next turn", i);
        cr_assert(eq(int, a[i].err, 0));
        cr_assert(eq(int, status_of(a[i].body, msgid, sizeof msgid),
                     i < 4 ? codes[i] : i == 4 ? 400 : 503), "%s", a[i].body);
        cr_assert(eq(int, a[i].topic, i < 4 ? CG_TOPIC_SEND_STATUS : CG_TOPIC_RECIVE_STATUS));
        free(a[i].body);
    }
    finish();
}

/* A request whose answer is still due when chat goes away is answered
 * CG_E_CLOSED by cg_chat_destroy(), once: the turn after only frees it. */
Test(chat_rule, destroy_answers_a_refused_request_still_due, .init = setup, .fini = teardown)
{
    struct cg_chat_conn conn;
    struct ans a = { 0 };

    cg_chat_conn_init(&conn, &E.cfg);
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &ALICE, "nope", 4, on_done, &a, &E), 0));
    cr_assert(eq(int, a.called, 0));
    cg_chat_destroy(E.chat);
    E.chat = NULL;
    cr_assert(eq(int, a.called, 1));
    cr_assert(eq(int, a.err, CG_E_CLOSED));
    cr_assert(a.body == NULL);
    uv_run(&E.loop, UV_RUN_NOWAIT);
    cr_assert(eq(int, a.called, 1));
    finish();
}

/* The same when the store closes first; and once it is closing, a request
 * is refused with CG_E_CLOSED and no callback at all. */
Test(chat_rule, store_close_answers_a_refused_request_still_due, .init = setup,
     .fini = teardown)
{
    struct cg_chat_conn conn;
    struct ans a = { 0 }, b = { 0 };

    cg_chat_conn_init(&conn, &E.cfg);
    cr_assert(eq(int, cg_chat_recive(E.chat, &ALICE, "nope", 4, 0, on_done, &a, &E), 0));
    cr_assert(eq(int, a.called, 0));
    cg_store_close(E.st, NULL, NULL);
    cr_assert(eq(int, a.called, 1));
    cr_assert(eq(int, a.err, CG_E_CLOSED));
    cr_assert(eq(int, a.topic, CG_TOPIC_RECIVE_STATUS));
    cr_assert(eq(int, cg_chat_send(E.chat, &conn, &ALICE, "nope", 4, on_done, &b, &E),
                 CG_E_CLOSED));
    cr_assert(eq(int, cg_chat_recive(E.chat, &ALICE, "nope", 4, 0, on_done, &b, &E),
                 CG_E_CLOSED));
    E.st = NULL;
    uv_run(&E.loop, UV_RUN_NOWAIT);
    cr_assert(eq(int, a.called, 1));
    cr_assert(eq(int, b.called, 0), "an error return never calls back");
    finish();
}

/* ---- recive ------------------------------------------------------------ */

struct recive_case {
    char body[160];
    int  code;
    char msgid[72];
};

ParameterizedTestParameters(chat_recive, validation)
{
    static struct recive_case cases[] = {
        { "{\"msgID\":\"" ID8 "\"}", 503, ID8 },
        { "{\"msgID\":\"" ID64 "\"}", 503, ID64 },
        { "{\"msgID\":\"abcdefg\"}", 400, "" },
        { "{\"msgID\":\"" ID64 "x\"}", 400, "" },
        { "{\"msgID\":\"" ID8 "\",\"extra\":1}", 503, ID8 },
        { "{\"msgID\":12345678}", 400, "" },
        { "{}", 400, "" },
        { "[]", 400, "" },
        { "", 400, "" },
        { "{\"msgID\":\"" ID8 "\"", 400, ID8 },
        { "{\"msgID\":\"" ID8 "\",\"msgID\":\"" ID8 "\"}", 400, ID8 },
    };
    return cr_make_param_array(struct recive_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct recive_case *c, chat_recive, validation, .init = setup,
                  .fini = teardown)
{
    struct ans a = { 0 };
    char msgid[80];

    cr_assert(eq(int, cg_chat_recive(E.chat, &ALICE, c->body, strlen(c->body), 0, on_done, &a,
                                     &E), 0));
    next_turn(&a);
    cr_assert(eq(int, a.topic, CG_TOPIC_RECIVE_STATUS));
    cr_assert(eq(int, status_of(a.body, msgid, sizeof msgid), c->code), "%s", a.body);
    cr_assert(eq(str, msgid, (char *)c->msgid), "%s", a.body);
    free(a.body);
    finish();
}

Test(chat_recive, by_id_ignores_the_body, .init = setup, .fini = teardown)
{
    struct ans a = { 0 };

    cr_assert(eq(int, cg_chat_recive(E.chat, &ALICE, "garbage", 7, 12, on_done, &a, &E), 0));
    next_turn(&a);
    cr_assert(eq(str, a.body, "{\"code\":503,\"status\":\"失败\",\"content\":\"store "
                              "unavailable, retry\"}"));
    free(a.body);
    finish();
}

/* ---- sync / fetch -------------------------------------------------------- */

struct sync_case {
    char     body[48];
    int      rc;
    uint64_t key;
};

ParameterizedTestParameters(chat_sync, parse)
{
    static struct sync_case cases[] = {
        { "", 0, 0 },
        { "  \n", 0, 0 },
        { "{}", 0, 0 },
        { "{\"syncKey\":0}", 0, 0 },
        { "{\"syncKey\":255}", 0, 255 },
        { "{\"syncKey\":\"255\"}", 0, 255 },
        { "{\"syncKey\":\"0\"}", 0, 0 },
        { "{\"syncKey\":null}", 0, 0 },
        { "{\"syncKey\":9223372036854775807}", 0, 9223372036854775807ULL },
        { "{\"syncKey\":-1}", CG_E_INVAL, 0 },
        { "{\"syncKey\":1.5}", CG_E_INVAL, 0 },
        { "{\"syncKey\":\"x\"}", CG_E_INVAL, 0 },
        { "{\"syncKey\":true}", CG_E_INVAL, 0 },
        { "[1]", CG_E_INVAL, 0 },
        { "12", CG_E_INVAL, 0 },
        { "{\"syncKey\":", CG_E_INVAL, 0 },
        { "{\"syncKey\":1,\"syncKey\":2}", CG_E_INVAL, 0 },
    };
    return cr_make_param_array(struct sync_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct sync_case *c, chat_sync, parse)
{
    uint64_t key = 77;

    cr_assert(eq(int, cg_chat_parse_sync(c->body, strlen(c->body), &key), c->rc), "%s",
              c->body);
    cr_assert(eq(u64, key, c->key), "%s", c->body);
}

static void
on_fetch_never(uint64_t sid, void *ticket, int err, const struct cg_chat_item *items,
               size_t n, int more, uint64_t position, void *data)
{
    (void)sid; (void)ticket; (void)err; (void)items; (void)n; (void)more; (void)position;
    (void)data;
    cr_fatal("a fetch refused at once must not call back");
}

Test(chat_fetch, refuses_at_once_without_store_or_limit, .init = setup, .fini = teardown)
{
    cr_assert(eq(int, cg_chat_fetch(E.chat, &ALICE, 0, 0, 10, on_fetch_never, NULL, NULL),
                 CG_E_STORE));
    cr_assert(eq(int, cg_chat_fetch(E.chat, &ALICE, 1, 0, 0, on_fetch_never, NULL, NULL),
                 CG_E_INVAL));
    uv_run(&E.loop, UV_RUN_NOWAIT);
    finish();
}

/* ---- allocation failures ------------------------------------------------ */

/* Fail each allocation of a scenario in turn (STYLE.md 10): every call
 * either succeeds with its callback called once, or returns CG_E_NOMEM
 * with no callback; LeakSanitizer checks that nothing leaks. */
Test(chat_alloc, every_failed_allocation_is_clean)
{
    static const char valid[] = "{\"msgID\":\"" ID8 "\",\"reciverId\":2,\"content\":\"hi\"}";
    static const char bad[] = "{\"msgID\":\"x\"}";
    int saw_success = 0;

    for (unsigned long n = 1; n <= 40; n++) {
        struct cg_chat_conn conn;
        struct ans a;
        struct cg_buf *b;
        int rc;

        setup();
        cg_chat_conn_init(&conn, &E.cfg);
        cg_alloc_fail_after(n);
        for (int i = 0; i < 2; i++) {
            const char *body = i ? bad : valid;
            memset(&a, 0, sizeof a);
            rc = cg_chat_send(E.chat, &conn, &ALICE, body, strlen(body), on_done, &a, &E);
            cr_assert(rc == 0 || rc == CG_E_NOMEM);
            if (rc == 0)
                next_turn(&a);
            uv_run(&E.loop, UV_RUN_NOWAIT);
            cr_assert(eq(int, a.called, rc == 0 ? 1 : 0));
            free(a.body);
            memset(&a, 0, sizeof a);
            rc = cg_chat_recive(E.chat, &ALICE, body, strlen(body), 0, on_done, &a, &E);
            cr_assert(rc == 0 || rc == CG_E_NOMEM);
            if (rc == 0)
                next_turn(&a);
            uv_run(&E.loop, UV_RUN_NOWAIT);
            cr_assert(eq(int, a.called, rc == 0 ? 1 : 0));
            free(a.body);
        }
        b = cg_chat_render_send_ok(ID8, 8, 1, 2);
        cg_buf_unref(b);
        b = cg_chat_render_init_status(1, 2, 1);
        cg_buf_unref(b);
        saw_success |= rc == 0;
        cg_alloc_fail_after(0);
        finish();
    }
    cr_assert(eq(int, saw_success, 1), "the last rounds must run out of failures");

    /* create under failure */
    for (unsigned long n = 1; n <= 10; n++) {
        uv_loop_t loop;
        struct cg_config cfg;
        struct cg_metrics m;
        cg_store *st = NULL;
        cg_chat *chat = NULL;
        int rc1, rc2 = -1;

        memset(&cfg, 0, sizeof cfg);
        memset(&m, 0, sizeof m);
        cfg.redis_url = "redis://:pw@127.0.0.1:6379/1";
        cg_test_redis_url(&cfg, cfg.redis_url);
        uv_loop_init(&loop);
        cg_alloc_fail_after(n);
        rc1 = cg_store_create(&loop, &cfg, &m, &st);
        if (rc1 == 0)
            rc2 = cg_chat_create(&cfg, st, &m, &chat);
        cg_alloc_fail_after(0);
        cr_assert(rc1 == 0 || rc1 == CG_E_NOMEM, "rc %d", rc1);
        cr_assert(rc1 != 0 || rc2 == 0 || rc2 == CG_E_NOMEM);
        cg_chat_destroy(chat);
        if (st)
            cg_store_close(st, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        cr_assert(eq(int, uv_loop_close(&loop), 0));
        cg_test_redis_url_done(&cfg);
    }
}
