/* chat_json.c - the JSON of the /socket/chat/... destinations (PROTOCOL.md
 * section 4): which destination a SEND names, the request bodies decoded
 * and validated (send, recive, sync; the common send body without
 * jansson), and every answer rendered (send/status, recive/status,
 * init/status), with the small JSON writer they share. Pure: no I/O, no
 * store; fuzzed by tests/fuzz/fuzz_chat_json.c. chat.c runs the requests. */
#include "fmacros.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat/chat.h"
#include "chat/chat_internal.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/json_scan.h"

/* ---- routes ---------------------------------------------------------- */

static const struct {
    const char     *path;
    size_t          len;
    enum cg_chat_op op;
} routes[] = {
#define ROUTE(p, o) { p, sizeof(p) - 1, o }
    ROUTE("/socket/chat/send",   CG_CHAT_SEND),
    ROUTE("/socket/chat/recive", CG_CHAT_RECIVE),
    ROUTE("/socket/chat/init",   CG_CHAT_INIT),
    ROUTE("/socket/chat/sync",   CG_CHAT_SYNC),
#undef ROUTE
};

enum cg_chat_op
cg_chat_route(const char *dest, size_t len)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (len == routes[i].len && memcmp(dest, routes[i].path, len) == 0)
            return routes[i].op;
    return CG_CHAT_UNKNOWN;
}

/* ---- JSON writer ----------------------------------------------------- */

void
jw_reserve(struct jw *w, size_t n)
{
    size_t cap;
    char *p;

    if (w->err || w->len + n + 1 <= w->cap)
        return;
    cap = w->cap ? w->cap : 128;
    while (cap < w->len + n + 1)
        cap *= 2;
    if ((p = cg_realloc(w->p, cap)) == NULL) {
        w->err = 1;
        return;
    }
    w->p = p;
    w->cap = cap;
}

void
jw_raw(struct jw *w, const char *s, size_t n)
{
    jw_reserve(w, n);
    if (w->err)
        return;
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}


void
jw_u64(struct jw *w, uint64_t v)
{
    char b[CG_U64_STR_MAX];

    jw_raw(w, b, cg_u64_str(b, v));
}

static void
jw_i64(struct jw *w, int64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    jw_raw(w, b, (size_t)n);
}

/* s[0..n) as a JSON string: quotes, backslash and control characters
 * escaped; everything else (valid UTF-8 by now) copied as is. */
void
jw_str(struct jw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    jw_reserve(w, n + 2);             /* the common case: nothing to escape */
    jw_lit(w, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[6];
        size_t el = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        jw_raw(w, s + run, i - run);
        run = i + 1;
        e[0] = '\\';
        switch (c) {
        case '"':  e[1] = '"';  break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b';  break;
        case '\f': e[1] = 'f';  break;
        case '\n': e[1] = 'n';  break;
        case '\r': e[1] = 'r';  break;
        case '\t': e[1] = 't';  break;
        default:
            e[1] = 'u';
            e[2] = '0';
            e[3] = '0';
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            el = 6;
        }
        jw_raw(w, e, el);
    }
    jw_raw(w, s + run, n - run);
    jw_lit(w, "\"");
}

/* The finished text as a cg_buf (NULL on any error); resets w. */
struct cg_buf *
jw_buf(struct jw *w)
{
    struct cg_buf *b = w->err ? NULL : cg_buf_create(w->p ? w->p : "", w->len);

    cg_free(w->p);
    memset(w, 0, sizeof *w);
    return b;
}

/* ---- rendering ------------------------------------------------------- */

static void
render_status_head(struct jw *w, int code, const char *msgid, size_t msgid_len)
{
    jw_lit(w, "{");
    if (msgid) {
        jw_lit(w, "\"msgID\":");
        jw_str(w, msgid, msgid_len);
        jw_lit(w, ",");
    }
    jw_lit(w, "\"code\":");
    jw_i64(w, code);
    if (code == 200)
        jw_lit(w, ",\"status\":\"" STATUS_OK "\",\"content\":");
    else
        jw_lit(w, ",\"status\":\"" STATUS_FAIL "\",\"content\":");
}

struct cg_buf *
cg_chat_render_status(int code, const char *msgid, size_t msgid_len, const char *content)
{
    struct jw w = { 0 };

    render_status_head(&w, code, msgid, msgid_len);
    jw_str(&w, content ? content : "", content ? strlen(content) : 0);
    jw_lit(&w, "}");
    return jw_buf(&w);
}

struct cg_buf *
cg_chat_render_send_ok(const char *msgid, size_t msgid_len, uint64_t id, int64_t time_ms)
{
    struct jw w = { 0 };

    render_status_head(&w, 200, msgid, msgid_len);
    jw_lit(&w, "\"ok\",\"id\":");
    jw_u64(&w, id);
    jw_lit(&w, ",\"time\":");
    jw_i64(&w, time_ms);
    jw_lit(&w, "}");
    return jw_buf(&w);
}

struct cg_buf *
cg_chat_render_init_status(uint64_t count, uint64_t sync_key, int more)
{
    struct jw w = { 0 };

    jw_lit(&w, "{\"code\":200,\"count\":");
    jw_u64(&w, count);
    jw_lit(&w, ",\"syncKey\":");
    jw_u64(&w, sync_key);
    if (more > 0)
        jw_lit(&w, ",\"more\":true");
    else if (more == 0)
        jw_lit(&w, ",\"more\":false");
    jw_lit(&w, "}");
    return jw_buf(&w);
}

/* ---- decoding -------------------------------------------------------- */

static int
msgid_ok(const char *s, size_t n)
{
    if (n < CG_CHAT_MSGID_MIN || n > CG_CHAT_MSGID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Copy a valid msgID out of v; 0 if v is not one. */
static int
take_msgid(const json_t *v, char *out, size_t *len_out)
{
    const char *s;
    size_t n;

    if (!json_is_string(v))
        return 0;
    s = json_string_value(v);
    n = json_string_length(v);
    if (!msgid_ok(s, n))
        return 0;
    memcpy(out, s, n);
    out[n] = '\0';
    *len_out = n;
    return 1;
}

/* Best effort for a body that is not JSON: find "msgID" : "<valid id>" so
 * the error answer can still name the request. */
static void
scan_msgid(const char *body, size_t len, char *out, size_t *len_out)
{
    static const char key[] = "\"msgID\"";
    const char *p = body, *end = body + len;

    *len_out = 0;
    out[0] = '\0';
    while (p && (size_t)(end - p) >= sizeof key - 1) {
        const char *q = memmem(p, (size_t)(end - p), key, sizeof key - 1), *s;
        if (q == NULL)
            return;
        p = q + sizeof key - 1;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
        if (p >= end || *p != ':')
            continue;
        p++;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
        if (p >= end || *p != '"')
            continue;
        s = ++p;
        while (p < end && *p != '"' && p - s <= CG_CHAT_MSGID_MAX)
            p++;
        if (p < end && *p == '"' && msgid_ok(s, (size_t)(p - s))) {
            memcpy(out, s, (size_t)(p - s));
            out[p - s] = '\0';
            *len_out = (size_t)(p - s);
            return;
        }
    }
}

/* jansson refuses invalid UTF-8 in the input, and \u escapes that make a
 * lone surrogate ("invalid Unicode '\uD800'"). Both can only be the
 * content (every other string is ASCII by rule), so they answer 413. */
static int
json_error_is_unicode(const json_error_t *e)
{
    enum json_error_code code = json_error_code(e);

    return code == json_error_invalid_utf8 ||
           (code == json_error_invalid_syntax &&
            strncmp(e->text, "invalid Unicode '", 17) == 0);
}

/* A positive uid from a JSON integer or a decimal string; 0 if invalid. */
static uint64_t
decode_uid(const json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        return x > 0 ? (uint64_t)x : 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        uint64_t x = 0;

        if (n == 0 || n > 19)
            return 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return 0;
            x = x * 10 + (uint64_t)(s[i] - '0');   /* 19 digits cannot wrap */
        }
        return x <= (uint64_t)INT64_MAX ? x : 0;
    }
    return 0;
}

static json_t *
load_body(const char *body, size_t len, json_error_t *err)
{
    return json_loadb(body ? body : "", body ? len : 0,
                      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, err);
}

static int
refuse(struct cg_chat_send_req *out, int code, const char *reason)
{
    out->reason = reason;
    return code;
}

enum { SF_MSGID, SF_RECIVER, SF_RECEIVER, SF_CONTENT, SF_MAX };

/* The common case without jansson (json_scan.h): a plain object with a
 * valid msgID, one receiver id as a number and a content string without
 * escapes, within max_content_bytes. 1 when out is filled (200), 0 when
 * the full decoder must decide. content then points into body. */
static int
decode_send_fast(const char *body, size_t len, const struct cg_config *cfg,
                 struct cg_chat_send_req *out)
{
    struct cg_jscan_field f[SF_MAX] = {
        [SF_MSGID]    = { .name = "msgID",      .type = CG_JSCAN_STRING },
        [SF_RECIVER]  = { .name = "reciverId",  .type = CG_JSCAN_UINT },
        [SF_RECEIVER] = { .name = "receiverId", .type = CG_JSCAN_UINT },
        [SF_CONTENT]  = { .name = "content",    .type = CG_JSCAN_STRING },
    };
    const struct cg_jscan_field *to;

    if (cg_jscan_object(body, len, f, SF_MAX) < 0 || !f[SF_MSGID].seen ||
        !f[SF_CONTENT].seen || f[SF_RECIVER].seen == f[SF_RECEIVER].seen ||
        !msgid_ok(f[SF_MSGID].str, f[SF_MSGID].len) ||
        (cfg->max_content_bytes >= 0 &&
         f[SF_CONTENT].len > (uint64_t)cfg->max_content_bytes))
        return 0;
    to = f[SF_RECIVER].seen ? &f[SF_RECIVER] : &f[SF_RECEIVER];
    memcpy(out->msgid, f[SF_MSGID].str, f[SF_MSGID].len);
    out->msgid[f[SF_MSGID].len] = '\0';
    out->msgid_len = f[SF_MSGID].len;
    out->reciver = to->num;
    out->content = f[SF_CONTENT].str;
    out->content_len = f[SF_CONTENT].len;
    return 1;
}

int
cg_chat_decode_send(const char *body, size_t len, const struct cg_config *cfg,
                    struct cg_chat_send_req *out)
{
    json_error_t jerr;
    json_t *doc, *v, *alias;
    uint64_t a = 0, b = 0;

    memset(out, 0, sizeof *out);
    if (decode_send_fast(body, len, cfg, out))
        return 200;
    if ((doc = load_body(body, len, &jerr)) == NULL) {
        scan_msgid(body ? body : "", body ? len : 0, out->msgid, &out->msgid_len);
        if (json_error_is_unicode(&jerr))
            return refuse(out, 413, "content is not valid UTF-8");
        snprintf(out->reason_buf, sizeof out->reason_buf,
                 "malformed JSON at byte %d", jerr.position);
        return refuse(out, 400, out->reason_buf);
    }
    out->doc = doc;
    if (!json_is_object(doc))
        return refuse(out, 400, "body must be a JSON object");
    if (!take_msgid(json_object_get(doc, "msgID"), out->msgid, &out->msgid_len))
        return refuse(out, 400, "msgID must be 8-64 characters of [A-Za-z0-9_-]");

    v = json_object_get(doc, "reciverId");
    alias = json_object_get(doc, "receiverId");
    if (v == NULL && alias == NULL)
        return refuse(out, 400, "reciverId is missing");
    if ((v && (a = decode_uid(v)) == 0) || (alias && (b = decode_uid(alias)) == 0))
        return refuse(out, 400, "reciverId must be a positive integer");
    if (v && alias && a != b)
        return refuse(out, 400, "reciverId and receiverId disagree");
    out->reciver = v ? a : b;

    v = json_object_get(doc, "content");
    if (!json_is_string(v))
        return refuse(out, 400, "content must be a string");
    out->content = json_string_value(v);
    out->content_len = json_string_length(v);
    if (cfg->max_content_bytes >= 0 && out->content_len > (uint64_t)cfg->max_content_bytes) {
        snprintf(out->reason_buf, sizeof out->reason_buf,
                 "content exceeds %lld bytes (max_content_bytes)",
                 (long long)cfg->max_content_bytes);
        return refuse(out, 413, out->reason_buf);
    }
    return 200;
}

void
cg_chat_send_req_cleanup(struct cg_chat_send_req *req)
{
    if (req->doc)
        json_decref((json_t *)req->doc);
    req->doc = NULL;
    req->content = NULL;
}

int
cg_chat_decode_recive(const char *body, size_t len, struct cg_chat_recive_req *out)
{
    struct cg_jscan_field id = { .name = "msgID", .type = CG_JSCAN_STRING };
    json_error_t jerr;
    json_t *doc;
    int code = 200;

    memset(out, 0, sizeof *out);
    /* The common case without jansson (json_scan.h). */
    if (cg_jscan_object(body, len, &id, 1) == 0 && id.seen && msgid_ok(id.str, id.len)) {
        memcpy(out->msgid, id.str, id.len);
        out->msgid[id.len] = '\0';
        out->msgid_len = id.len;
        return 200;
    }
    if ((doc = load_body(body, len, &jerr)) == NULL) {
        scan_msgid(body ? body : "", body ? len : 0, out->msgid, &out->msgid_len);
        out->reason = "malformed JSON";
        return 400;
    }
    if (!json_is_object(doc)) {
        out->reason = "body must be a JSON object";
        code = 400;
    } else if (!take_msgid(json_object_get(doc, "msgID"), out->msgid, &out->msgid_len)) {
        out->reason = "msgID must be 8-64 characters of [A-Za-z0-9_-]";
        code = 400;
    }
    json_decref(doc);
    return code;
}

int
cg_chat_parse_sync(const char *body, size_t len, uint64_t *key_out)
{
    json_t *doc, *v;
    size_t i;
    int rc = 0;

    *key_out = 0;
    for (i = 0; body && i < len; i++)
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')
            break;
    if (body == NULL || i == len)
        return 0;                      /* empty body: from the start */
    if ((doc = load_body(body, len, NULL)) == NULL)
        return CG_E_INVAL;
    if (!json_is_object(doc)) {
        rc = CG_E_INVAL;
    } else if ((v = json_object_get(doc, "syncKey")) != NULL && !json_is_null(v)) {
        if (json_is_integer(v) && json_integer_value(v) >= 0)
            *key_out = (uint64_t)json_integer_value(v);
        else if (json_is_string(v) && json_string_length(v) == 1 &&
                 json_string_value(v)[0] == '0')
            *key_out = 0;
        else if ((*key_out = decode_uid(v)) == 0)
            rc = CG_E_INVAL;
    }
    json_decref(doc);
    return rc;
}
