/* chat.c - the /socket/chat/... destinations (PROTOCOL.md section 4): decode
 * and validate request bodies, rate limit sends, run one Lua script per
 * request through the store, and render every answer as the JSON body its
 * status topic carries.
 *
 * One function per operation:
 *
 *   cg_chat_send    decode -> token bucket -> EVALSHA send   -> send/status
 *   cg_chat_recive  decode -> EVALSHA recive                 -> recive/status
 *   cg_chat_fetch   EVALSHA fetch (init: pending, sync: history) -> items
 *
 * A request that fails before Redis (400, 413, 429, 503 "store not ready")
 * is answered synchronously, from inside the request function; otherwise
 * the answer comes from the store's reply callback. Either way the done
 * callback fires exactly once (STYLE.md 3).
 *
 * Lifetime. Every request waiting for Redis is a struct creq on the chat's
 * list. cg_chat_destroy() answers each with CG_E_CLOSED at once and marks it
 * orphaned (creq->chat = NULL); when the store later calls back (at the
 * latest from cg_store_close) the orphan is only freed. So chat and store
 * may be torn down in either order.
 *
 * Key schema (store.h): every key of a request is the target user's
 * "{u:<uid>}:<suffix>" built with cg_store_key(); the push channel is
 * cg_store_channel(). Script KEYS/ARGV are listed at the top of each
 * gateway/store/lua/<name>.lua and mirrored by the *_KEYS tables below.
 *
 * Sends and confirmations are operations of gateway/store/lua/chat.lua, which
 * the store runs in batches (store.h); fetches are calls of fetch.lua.
 *
 * The MESSAGE body is assembled by chat.lua from three pieces made here;
 * the content is JSON-escaped exactly once, by jw_str(), so what the
 * receiver parses equals what the sender sent. */
#include "fmacros.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "chat/chat.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/json_scan.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store.h"

/* Hard cap of one fetch (fetch.lua clamps to the same). */
#define FETCH_LIMIT_MAX 1000

#define STATUS_OK   "成功"
#define STATUS_FAIL "失败"

static const char REASON_STORE[] = "store unavailable, retry";

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

/* Key suffixes, in the KEYS order of each script. */
static const char *const SEND_KEYS[]   = { "user", "msg", "pending", "seq" };
static const char *const RECIVE_KEYS[] = { "msg", "pending", "user" };
static const char *const FETCH_KEYS[]  = { "pending", "user", "seq", "msg" };
#define NSEND_KEYS   (sizeof SEND_KEYS / sizeof SEND_KEYS[0])
#define NRECIVE_KEYS (sizeof RECIVE_KEYS / sizeof RECIVE_KEYS[0])
#define NFETCH_KEYS  (sizeof FETCH_KEYS / sizeof FETCH_KEYS[0])
#define MAX_KEYS     NSEND_KEYS

/* ---- types ----------------------------------------------------------- */

/* Growable output with a sticky error (STYLE.md 3). */
struct jw {
    char  *p;
    size_t len, cap;
    int    err;
};

struct cg_chat {
    const struct cg_config *cfg;
    struct cg_store        *store;
    struct cg_metrics      *m;
    struct creq            *reqs;      /* waiting for Redis */
    struct jw               pieces;    /* send's body pieces, reused */
    char                    max_pending[24], history_max[24];
};

struct creq {
    struct creq       *prev, *next;
    cg_chat           *chat;           /* NULL once orphaned */
    enum cg_chat_op    op;
    uint64_t           sid;
    void              *ticket;
    void              *data;
    cg_chat_done_cb    done;           /* send, recive */
    cg_chat_fetch_cb   fetch_cb;       /* init, sync */
    uint64_t           start_us;
    char               msgid[CG_CHAT_MSGID_MAX + 1];
    size_t             msgid_len;
};

/* ---- JSON writer ----------------------------------------------------- */

static void
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

static void
jw_raw(struct jw *w, const char *s, size_t n)
{
    jw_reserve(w, n);
    if (w->err)
        return;
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}

#define jw_lit(w, s) jw_raw((w), (s), sizeof(s) - 1)

static void
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
static void
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
static struct cg_buf *
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

/* ---- requests -------------------------------------------------------- */

static uint64_t
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct creq *
creq_new(cg_chat *chat, enum cg_chat_op op, uint64_t sid, void *ticket, void *data)
{
    struct creq *q = cg_calloc(1, sizeof *q);

    if (q == NULL)
        return NULL;
    q->chat = chat;
    q->op = op;
    q->sid = sid;
    q->ticket = ticket;
    q->data = data;
    q->start_us = mono_us();
    return q;
}

static void
creq_link(struct creq *q)
{
    cg_chat *chat = q->chat;

    q->prev = NULL;
    q->next = chat->reqs;
    if (chat->reqs)
        chat->reqs->prev = q;
    chat->reqs = q;
}

/* Take q off its chat's list; returns the chat, or NULL for an orphan. */
static cg_chat *
creq_unlink(struct creq *q)
{
    cg_chat *chat = q->chat;

    if (chat == NULL)
        return NULL;
    if (q->prev)
        q->prev->next = q->next;
    else
        chat->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    return chat;
}

static enum cg_send_result
send_result(int code)
{
    switch (code) {
    case 200: return CG_SEND_200;
    case 400: return CG_SEND_400;
    case 404: return CG_SEND_404;
    case 409: return CG_SEND_409;
    case 413: return CG_SEND_413;
    case 429: return CG_SEND_429;
    case 507: return CG_SEND_507;
    default:  return CG_SEND_503;
    }
}

/* Call done with a rendered status; err CG_E_NOMEM if it cannot render. */
static void
answer(cg_chat_done_cb done, uint64_t sid, void *ticket, void *data,
       enum cg_chat_topic topic, struct cg_buf *body)
{
    done(sid, ticket, body ? 0 : CG_E_NOMEM, topic, body, data);
}

static int
build_keys(uint64_t uid, const char *const *suffix, size_t n,
           char keys[][CG_STORE_KEY_MAX], const char **argv, size_t *lens)
{
    for (size_t i = 0; i < n; i++) {
        int len = cg_store_key(keys[i], CG_STORE_KEY_MAX, uid, suffix[i]);
        if (len < 0)
            return len;
        argv[i] = keys[i];
        lens[i] = (size_t)len;
    }
    return 0;
}

/* The first n elements of an array reply, as integers; -1 if the reply
 * has another shape (the caller then answers 503). */
static int
reply_ints(const struct cg_store_reply *r, size_t n, long long *out)
{
    if (cg_store_reply_type(r) != CG_STORE_REPLY_ARRAY || cg_store_reply_count(r) < n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct cg_store_reply *e = cg_store_reply_element(r, i);

        if (cg_store_reply_type(e) != CG_STORE_REPLY_INTEGER)
            return -1;
        out[i] = cg_store_reply_integer(e);
    }
    return 0;
}

/* ---- send ------------------------------------------------------------ */

static const char *
send_reason(int code, const struct cg_config *cfg, char *buf, size_t cap)
{
    switch (code) {
    case 404: return "unknown receiver";
    case 409: return "msgID already used for this receiver by another sender; "
                     "make a new msgID and send again";
    case 507:
        snprintf(buf, cap, "receiver's pending inbox is full (max_pending %lld)",
                 (long long)cfg->max_pending);
        return buf;
    default:  return REASON_STORE;
    }
}

static void
on_send_reply(const struct cg_store_reply *r, int err, void *data)
{
    struct creq *q = data;
    cg_chat *chat = creq_unlink(q);
    long long v[3];
    int code;
    struct cg_buf *body;
    char rbuf[96];

    if (chat == NULL)
        goto out;                      /* answered by cg_chat_destroy */
    if (err == CG_E_CLOSED) {
        q->done(q->sid, q->ticket, CG_E_CLOSED, CG_TOPIC_SEND_STATUS, NULL, q->data);
        goto out;
    }
    if (err < 0 || reply_ints(r, 3, v) < 0 ||
        (v[0] != 200 && v[0] != 404 && v[0] != 409 && v[0] != 507)) {
        if (err == 0)
            cg_log(CG_LOG_WARN, "chat: unexpected reply of the send script (type %d); "
                   "answering 503", r ? (int)cg_store_reply_type(r) : -1);
        code = 503;
    } else {
        code = (int)v[0];
    }
    if (code == 200)
        body = cg_chat_render_send_ok(q->msgid, q->msgid_len, (uint64_t)v[1], v[2]);
    else
        body = cg_chat_render_status(code, q->msgid, q->msgid_len,
                                     send_reason(code, chat->cfg, rbuf, sizeof rbuf));
    if (chat->m) {
        chat->m->sends[send_result(code)]++;
        if (code == 200)
            cg_hist_observe(&chat->m->send_ack_ms,
                            (double)(mono_us() - q->start_us) / 1000.0);
    }
    answer(q->done, q->sid, q->ticket, q->data, CG_TOPIC_SEND_STATUS, body);
out:
    cg_free(q);
}

/* Token bucket of one connection: send_rate per second, send_burst deep. */
static int
bucket_take(const struct cg_config *cfg, struct cg_chat_conn *c)
{
    uint64_t now = cg_mono_ms();
    double burst = (double)cfg->send_burst;

    if (c == NULL || cfg->send_rate <= 0)
        return 1;                      /* no limit configured */
    if (now > c->last_ms) {
        c->tokens += (double)(now - c->last_ms) * (double)cfg->send_rate / 1000.0;
        if (c->tokens > burst)
            c->tokens = burst;
        c->last_ms = now;
    }
    if (c->tokens < 1.0)
        return 0;
    c->tokens -= 1.0;
    return 1;
}

void
cg_chat_conn_init(struct cg_chat_conn *c, const struct cg_config *cfg)
{
    c->tokens = cfg->send_burst > 0 ? (double)cfg->send_burst : 1.0;
    c->last_ms = cg_mono_ms();
}

/* Queue the send operation. Returns 0 (the reply will answer), 503 when
 * the store refused at once, or CG_E_NOMEM. */
static int
send_submit(cg_chat *chat, const struct cg_chat_caller *who,
            const struct cg_chat_send_req *in, struct creq *q)
{
    char keys[NSEND_KEYS][CG_STORE_KEY_MAX], sender[24], chan[32];
    const char *argv[NSEND_KEYS + 10];
    size_t lens[NSEND_KEYS + 10];
    struct jw *w = &chat->pieces;
    size_t k = NSEND_KEYS, p1, p2;
    int rc, chan_len;

    if (chat->store == NULL)
        return 503;
    if (build_keys(in->reciver, SEND_KEYS, NSEND_KEYS, keys, argv, lens) < 0 ||
        (chan_len = cg_store_channel(chan, sizeof chan, in->reciver)) < 0)
        return 503;

    /* {"id":ID ,"chatID":"..","sender":"..","reciver":" NAME
     * ","content":"..","time": TIME ,"senderId":S,"reciverId":R} */
    w->len = 0;
    w->err = 0;
    jw_lit(w, ",\"chatID\":");
    jw_str(w, in->msgid, in->msgid_len);
    jw_lit(w, ",\"sender\":");
    jw_str(w, who->name ? who->name : "", who->name ? strlen(who->name) : 0);
    jw_lit(w, ",\"reciver\":\"");
    p1 = w->len;
    jw_lit(w, "\",\"content\":");
    jw_str(w, in->content, in->content_len);
    jw_lit(w, ",\"time\":");
    p2 = w->len;
    jw_lit(w, ",\"senderId\":");
    jw_u64(w, who->uid);
    jw_lit(w, ",\"reciverId\":");
    jw_u64(w, in->reciver);
    jw_lit(w, "}");
    if (w->err)
        return CG_E_NOMEM;
#define ARG(s, n) (argv[k] = (s), lens[k] = (n), k++)
    ARG("send", 4);
    ARG(sender, cg_u64_str(sender, who->uid));
    ARG(in->msgid, in->msgid_len);
    ARG(chat->max_pending, strlen(chat->max_pending));
    ARG(chat->history_max, strlen(chat->history_max));
    ARG(chan, (size_t)chan_len);
    ARG(w->p, p1);
    ARG(w->p + p1, p2 - p1);
    ARG(w->p + p2, w->len - p2);
    ARG(who->want_delivered ? "1" : "0", 1);
#undef ARG
    /* Sharded by the receiver: its sends, confirmations and fetches share
     * one connection and stay in order (store.h). */
    rc = cg_store_chat_op(chat->store, in->reciver, (int)NSEND_KEYS, (int)k, argv, lens,
                          on_send_reply, q);
    if (rc == CG_E_STORE || rc == CG_E_CLOSED || rc == CG_E_INVAL)
        rc = 503;
    return rc;
}

int
cg_chat_send(cg_chat *chat, struct cg_chat_conn *conn, const struct cg_chat_caller *who,
             const char *body, size_t len, cg_chat_done_cb done, void *ticket, void *data)
{
    struct cg_chat_send_req in;
    struct creq *q = NULL;
    struct cg_buf *out;
    const char *reason;
    char rbuf[96];
    int code;

    code = cg_chat_decode_send(body, len, chat->cfg, &in);
    reason = in.reason;
    /* Over the memory budget no new message is taken in; confirmations
     * still are (they free memory), and so is everything already queued. */
    if (code == 200 && chat->cfg->memory_budget_bytes > 0 &&
        cg_heap_bytes() > chat->cfg->memory_budget_bytes) {
        code = 503;
        reason = "server busy: memory budget exceeded (memory_budget_bytes); try again later";
    } else if (code == 200 && !bucket_take(chat->cfg, conn)) {
        code = 429;
        snprintf(rbuf, sizeof rbuf, "rate limit: over %lld sends per second "
                 "(send_rate, burst send_burst %lld)", (long long)chat->cfg->send_rate,
                 (long long)chat->cfg->send_burst);
        reason = rbuf;
        if (chat->m)
            chat->m->rate_limited++;
    }
    if (code == 200) {
        if ((q = creq_new(chat, CG_CHAT_SEND, who->sid, ticket, data)) == NULL) {
            cg_chat_send_req_cleanup(&in);
            return CG_E_NOMEM;
        }
        q->done = done;
        memcpy(q->msgid, in.msgid, in.msgid_len + 1);
        q->msgid_len = in.msgid_len;
        code = send_submit(chat, who, &in, q);
        if (code == 0) {
            creq_link(q);
            cg_chat_send_req_cleanup(&in);
            return 0;
        }
        cg_free(q);
        if (code < 0) {
            cg_chat_send_req_cleanup(&in);
            return code;
        }
        reason = REASON_STORE;
    }
    out = cg_chat_render_status(code, in.msgid_len ? in.msgid : NULL, in.msgid_len, reason);
    cg_chat_send_req_cleanup(&in);
    if (out == NULL)
        return CG_E_NOMEM;
    if (chat->m)
        chat->m->sends[send_result(code)]++;
    cg_log(CG_LOG_DEBUG, "chat: send from uid %llu answered %d: %s",
           (unsigned long long)who->uid, code, reason);
    done(who->sid, ticket, 0, CG_TOPIC_SEND_STATUS, out, data);
    return 0;
}

/* ---- recive ---------------------------------------------------------- */

static void
on_recive_reply(const struct cg_store_reply *r, int err, void *data)
{
    struct creq *q = data;
    cg_chat *chat = creq_unlink(q);
    long long v[5];
    const char *msgid = q->msgid_len ? q->msgid : NULL, *found;
    size_t msgid_len = q->msgid_len, found_len;
    int code;

    if (chat == NULL)
        goto out;
    if (err == CG_E_CLOSED) {
        q->done(q->sid, q->ticket, CG_E_CLOSED, CG_TOPIC_RECIVE_STATUS, NULL, q->data);
        goto out;
    }
    /* [code, sender, id, stored time, 1 if the first confirmation, msgID] */
    found = cg_store_reply_type(cg_store_reply_element(r, 5)) == CG_STORE_REPLY_STRING
          ? cg_store_reply_str(cg_store_reply_element(r, 5), &found_len) : NULL;
    if (err < 0 || reply_ints(r, 5, v) < 0 || found == NULL ||
        (v[0] != 200 && v[0] != 404)) {
        if (err == 0)
            cg_log(CG_LOG_WARN, "chat: unexpected reply of the recive script; answering 503");
        code = 503;
    } else {
        code = (int)v[0];
        if (msgid == NULL && found_len > 0 && found_len <= CG_CHAT_MSGID_MAX) {
            /* Confirmed by id: name the message by what the store found. */
            memcpy(q->msgid, found, found_len);
            q->msgid[found_len] = '\0';
            msgid = q->msgid;
            msgid_len = found_len;
        }
    }
    if (code == 200 && chat->m) {
        chat->m->confirmations++;
        if (v[4] == 1)                 /* first confirmation only */
            cg_hist_observe(&chat->m->confirm_ms, (double)(cg_now_ms() - v[3]));
    }
    answer(q->done, q->sid, q->ticket, q->data, CG_TOPIC_RECIVE_STATUS,
           cg_chat_render_status(code, msgid, msgid_len,
                                 code == 200 ? "ok" :
                                 code == 404 ? "no such message for this user" : REASON_STORE));
out:
    cg_free(q);
}

static int
recive_submit(cg_chat *chat, const struct cg_chat_caller *who, uint64_t by_id,
              struct creq *q)
{
    char keys[NRECIVE_KEYS][CG_STORE_KEY_MAX], idbuf[24], uid[24];
    const char *argv[NRECIVE_KEYS + 5];
    size_t lens[NRECIVE_KEYS + 5];
    size_t k = NRECIVE_KEYS;
    int rc;

    if (chat->store == NULL ||
        build_keys(who->uid, RECIVE_KEYS, NRECIVE_KEYS, keys, argv, lens) < 0)
        return 503;
    argv[k] = "recive";
    lens[k++] = 6;
    if (by_id) {
        argv[k] = "id";
        lens[k++] = 2;
        argv[k] = idbuf;
        lens[k++] = cg_u64_str(idbuf, by_id);
    } else {
        argv[k] = "msgid";
        lens[k++] = 5;
        argv[k] = q->msgid;
        lens[k++] = q->msgid_len;
    }
    argv[k] = uid;
    lens[k++] = cg_u64_str(uid, who->uid);
    argv[k] = CG_STORE_CHANNEL_PREFIX;
    lens[k++] = sizeof(CG_STORE_CHANNEL_PREFIX) - 1;
    rc = cg_store_chat_op(chat->store, who->uid, (int)NRECIVE_KEYS, (int)k, argv, lens,
                          on_recive_reply, q);
    return rc == CG_E_NOMEM ? rc : rc < 0 ? 503 : 0;
}

int
cg_chat_recive(cg_chat *chat, const struct cg_chat_caller *who,
               const char *body, size_t len, uint64_t by_id,
               cg_chat_done_cb done, void *ticket, void *data)
{
    struct cg_chat_recive_req in;
    struct creq *q;
    struct cg_buf *out;
    int code = 200;

    memset(&in, 0, sizeof in);
    if (!by_id)
        code = cg_chat_decode_recive(body, len, &in);
    if (code == 200) {
        if ((q = creq_new(chat, CG_CHAT_RECIVE, who->sid, ticket, data)) == NULL)
            return CG_E_NOMEM;
        q->done = done;
        memcpy(q->msgid, in.msgid, in.msgid_len + 1);
        q->msgid_len = in.msgid_len;
        code = recive_submit(chat, who, by_id, q);
        if (code == 0) {
            creq_link(q);
            return 0;
        }
        cg_free(q);
        if (code < 0)
            return code;
        in.reason = REASON_STORE;
    }
    if ((out = cg_chat_render_status(code, in.msgid_len ? in.msgid : NULL, in.msgid_len,
                                     in.reason)) == NULL)
        return CG_E_NOMEM;
    done(who->sid, ticket, 0, CG_TOPIC_RECIVE_STATUS, out, data);
    return 0;
}

/* ---- init / sync ----------------------------------------------------- */

static void
on_fetch_reply(const struct cg_store_reply *r, int err, void *data)
{
    struct creq *q = data;
    cg_chat *chat = creq_unlink(q);
    struct cg_chat_item *items = NULL;
    size_t count = cg_store_reply_count(r), n = 0, i;
    int more = 0;

    if (chat == NULL)
        goto out;
    /* [more, then id, time, redelivered, body for each message] */
    if (err == 0 && (cg_store_reply_type(r) != CG_STORE_REPLY_ARRAY || count < 1 ||
                     (count - 1) % 4 != 0 ||
                     cg_store_reply_type(cg_store_reply_element(r, 0)) !=
                         CG_STORE_REPLY_INTEGER)) {
        const char *why = cg_store_reply_type(r) == CG_STORE_REPLY_ERROR
                        ? cg_store_reply_str(r, NULL) : NULL;

        cg_log(CG_LOG_WARN, "chat: unexpected reply of the fetch script%s%s",
               why ? ": " : "", why ? why : "");
        err = CG_E_STORE;
    }
    if (err < 0) {
        q->fetch_cb(q->sid, q->ticket, err, NULL, 0, 0, q->data);
        goto out;
    }
    more = cg_store_reply_integer(cg_store_reply_element(r, 0)) != 0;
    n = (count - 1) / 4;
    if (n > 0 && (items = cg_calloc(n, sizeof *items)) == NULL) {
        q->fetch_cb(q->sid, q->ticket, CG_E_NOMEM, NULL, 0, 0, q->data);
        goto out;
    }
    for (i = 0; i < n; i++) {
        const struct cg_store_reply *e[4];
        const char *body;
        size_t body_len;

        for (size_t k = 0; k < 4; k++)
            e[k] = cg_store_reply_element(r, 1 + 4 * i + k);
        if (cg_store_reply_type(e[0]) != CG_STORE_REPLY_INTEGER ||
            cg_store_reply_type(e[1]) != CG_STORE_REPLY_INTEGER ||
            cg_store_reply_type(e[2]) != CG_STORE_REPLY_INTEGER ||
            cg_store_reply_type(e[3]) != CG_STORE_REPLY_STRING) {
            err = CG_E_STORE;
            break;
        }
        items[i].id = (uint64_t)cg_store_reply_integer(e[0]);
        items[i].time_ms = cg_store_reply_integer(e[1]);
        items[i].redelivered = cg_store_reply_integer(e[2]) != 0;
        body = cg_store_reply_str(e[3], &body_len);
        if ((items[i].body = cg_buf_create(body, body_len)) == NULL) {
            err = CG_E_NOMEM;
            break;
        }
    }
    if (err < 0)
        q->fetch_cb(q->sid, q->ticket, err, NULL, 0, 0, q->data);
    else
        q->fetch_cb(q->sid, q->ticket, 0, items, n, more, q->data);
    for (i = 0; i < n; i++)
        cg_buf_unref(items[i].body);
    cg_free(items);
out:
    cg_free(q);
}

int
cg_chat_fetch(cg_chat *chat, const struct cg_chat_caller *who, int sync,
              uint64_t after_id, size_t limit,
              cg_chat_fetch_cb cb, void *ticket, void *data)
{
    char keys[NFETCH_KEYS][CG_STORE_KEY_MAX], after[24], lim[24];
    const char *argv[NFETCH_KEYS + 3];
    size_t lens[NFETCH_KEYS + 3];
    size_t k = NFETCH_KEYS;
    struct creq *q;
    int rc;

    if (limit == 0)
        return CG_E_INVAL;
    if (chat->store == NULL)
        return CG_E_STORE;
    if (limit > FETCH_LIMIT_MAX)
        limit = FETCH_LIMIT_MAX;
    if ((rc = build_keys(who->uid, FETCH_KEYS, NFETCH_KEYS, keys, argv, lens)) < 0)
        return rc;
    snprintf(after, sizeof after, "%llu", (unsigned long long)after_id);
    snprintf(lim, sizeof lim, "%zu", limit);
    argv[k] = sync ? "sync" : "init";
    lens[k++] = 4;
    argv[k] = after;
    lens[k++] = strlen(after);
    argv[k] = lim;
    lens[k++] = strlen(lim);
    if ((q = creq_new(chat, sync ? CG_CHAT_SYNC : CG_CHAT_INIT, who->sid, ticket, data)) == NULL)
        return CG_E_NOMEM;
    q->fetch_cb = cb;
    rc = cg_store_eval_keyed(chat->store, who->uid, CG_SCRIPT_FETCH, (int)NFETCH_KEYS,
                             (int)k, argv, lens, on_fetch_reply, q);
    if (rc < 0) {
        cg_free(q);
        return rc;
    }
    creq_link(q);
    return 0;
}

/* ---- create / destroy ------------------------------------------------ */

int
cg_chat_create(const struct cg_config *cfg, struct cg_store *store,
               struct cg_metrics *metrics, cg_chat **out)
{
    cg_chat *chat = cg_calloc(1, sizeof *chat);

    *out = NULL;
    if (chat == NULL)
        return CG_E_NOMEM;
    chat->cfg = cfg;
    chat->store = store;
    chat->m = metrics;
    snprintf(chat->max_pending, sizeof chat->max_pending, "%lld", (long long)cfg->max_pending);
    snprintf(chat->history_max, sizeof chat->history_max, "%lld", (long long)cfg->history_max);
    *out = chat;
    return 0;
}

void
cg_chat_destroy(cg_chat *chat)
{
    struct creq *q;

    if (chat == NULL)
        return;
    /* Answer everything still waiting for Redis now; the store's later
     * callback only frees the orphan. */
    while ((q = chat->reqs) != NULL) {
        creq_unlink(q);
        q->chat = NULL;
        if (q->op == CG_CHAT_SEND || q->op == CG_CHAT_RECIVE)
            q->done(q->sid, q->ticket, CG_E_CLOSED,
                    q->op == CG_CHAT_SEND ? CG_TOPIC_SEND_STATUS : CG_TOPIC_RECIVE_STATUS,
                    NULL, q->data);
        else
            q->fetch_cb(q->sid, q->ticket, CG_E_CLOSED, NULL, 0, 0, q->data);
    }
    cg_free(chat->pieces.p);
    cg_free(chat);
}
