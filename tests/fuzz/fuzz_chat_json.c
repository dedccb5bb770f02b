/* fuzz_chat_json.c - libFuzzer target for the chat body decoders (chat.h):
 * cg_chat_decode_send, cg_chat_decode_recive and cg_chat_parse_sync.
 *
 * Beyond "no crash, no leak, no UB", it checks the decoders' promises:
 *   - send answers only 200, 400 or 413; a 200 has a valid msgID, a
 *     receiver > 0 and content within max_content_bytes;
 *   - a msgID reported (even from a malformed body) is 8-64 of
 *     [A-Za-z0-9_-];
 *   - the JSON escaper round-trips: the content of a valid send, rendered
 *     into a status body (as its msgID field, which takes any bytes) and
 *     parsed back by jansson, is byte-for-byte the content that came in;
 *   - every rendered status is valid JSON;
 *   - the allocation-free scanner (json_scan.h) agrees with jansson on
 *     everything it accepts: same members, same values.
 * Any broken promise aborts, which libFuzzer reports as a crash. */
#include "fmacros.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat/chat.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/json_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
    if (!ok)
        abort();
}

static int
msgid_ok(const char *s, size_t n)
{
    if (n < CG_CHAT_MSGID_MIN || n > CG_CHAT_MSGID_MAX || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* Render a status with msgid = (p, n), parse it back, return the msgID
 * jansson sees (compared by the caller) via *out (json_t to decref). */
static json_t *
render_parse(int code, const char *p, size_t n, const char *reason)
{
    struct cg_buf *b = cg_chat_render_status(code, p, n, reason);
    json_t *o;

    if (b == NULL)
        return NULL;                  /* allocation failure: allowed */
    o = json_loadb(b->data, b->len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, NULL);
    check(o != NULL && json_is_object(o));
    cg_buf_unref(b);
    return o;
}

/* What cg_jscan_object accepts, jansson must read the same way. */
static void
check_scanner(const char *body, size_t size)
{
    struct cg_jscan_field f[] = {
        { .name = "msgID", .type = CG_JSCAN_STRING },
        { .name = "reciverId", .type = CG_JSCAN_UINT },
        { .name = "content", .type = CG_JSCAN_STRING },
    };
    size_t n = sizeof f / sizeof f[0], seen = 0;
    json_t *o;

    if (cg_jscan_object(body, size, f, n) < 0)
        return;
    o = json_loadb(body, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    check(o != NULL && json_is_object(o));
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(o, f[i].name);
        check((v != NULL) == (f[i].seen != 0));
        if (v == NULL)
            continue;
        seen++;
        if (f[i].type == CG_JSCAN_STRING)
            check(json_is_string(v) && json_string_length(v) == f[i].len &&
                  memcmp(json_string_value(v), f[i].str, f[i].len) == 0);
        else
            check(json_is_integer(v) && (uint64_t)json_integer_value(v) == f[i].num);
    }
    check(json_object_size(o) == seen);
    json_decref(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cg_config cfg;
    const char *body = (const char *)data;
    struct cg_chat_send_req s;
    struct cg_chat_recive_req r;
    uint64_t key;
    json_t *o;
    int code;

    cfg.max_content_bytes = 16384;
    check_scanner(body, size);

    code = cg_chat_decode_send(body, size, &cfg, &s);
    check(code == 200 || code == 400 || code == 413);
    check(s.msgid_len == 0 || msgid_ok(s.msgid, s.msgid_len));
    if (code == 200) {
        check(s.msgid_len > 0 && s.reciver > 0 && s.reciver <= (uint64_t)INT64_MAX);
        check(s.content != NULL && s.content_len <= 16384);
        o = render_parse(200, s.content, s.content_len, "ok");
        if (o) {
            json_t *m = json_object_get(o, "msgID");
            check(json_is_string(m) && json_string_length(m) == s.content_len &&
                  memcmp(json_string_value(m), s.content, s.content_len) == 0);
            json_decref(o);
        }
    } else {
        check(s.reason != NULL);
        o = render_parse(code, s.msgid_len ? s.msgid : NULL, s.msgid_len, s.reason);
        json_decref(o);
    }
    cg_chat_send_req_cleanup(&s);

    code = cg_chat_decode_recive(body, size, &r);
    check(code == 200 || code == 400);
    check(r.msgid_len == 0 || msgid_ok(r.msgid, r.msgid_len));
    check(code != 200 || r.msgid_len > 0);

    code = cg_chat_parse_sync(body, size, &key);
    check(code == 0 || code == CG_E_INVAL);
    check(code == 0 || key == 0);
    return 0;
}
