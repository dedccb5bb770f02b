/* backend_api.c - the backend API (PROTOCOL.md section 8): what an app's
 * own servers call, with an API key, under {base}/api/backend/.
 *
 *   POST {base}/api/backend/users                     users:write
 *   GET  {base}/api/backend/users/{x}                 any scope
 *   POST {base}/api/backend/users/{x}/disable         users:write
 *   POST {base}/api/backend/users/{x}/enable          users:write
 *   POST {base}/api/backend/users/{x}/delete          users:write
 *   POST {base}/api/backend/users/{x}/tokens          tokens:mint
 *   GET  {base}/api/backend/users/{x}/pending         pending:read
 *   GET  {base}/api/backend/users/{x}/pending/messages pending:read
 *   POST {base}/api/backend/users/{x}/pending/redeliver pending:write
 *   POST {base}/api/backend/users/{x}/pending/purge   pending:write
 *   POST {base}/api/backend/tokens/revoke             tokens:revoke
 *
 * The route table (server/routes.c) hands over "/api/backend/users" and
 * everything under "/api/backend/users/"; what follows the user ({x} is a
 * uid or a name, as in /api/users/{x}) is looked up in the small table
 * below, the way /api/users/{x} reads its name.
 *
 * Every request: the key from "Authorization: Bearer" only (never the
 * query: keys stay out of access logs), found in constant time
 * (api_keys.h); none or unknown is 401. Then the key's bucket on this node
 * (api_rate per second, api_burst at most; 429 with Retry-After), then
 * its scope (403). Each call is logged at info with the key's name, never
 * its secret; the changes (create, disable, enable, delete, mint,
 * redeliver, purge) once more at notice when done: the audit trail.
 *
 * Bodies are JSON objects, bounded by http_max_body like the rest of the
 * API; an empty body is {}.
 *
 * Pending purge works in chunks of PURGE_CHUNK ids per script call
 * (pending_admin.lua), one call after the other, up to the request's
 * "max" (default PURGE_DEFAULT, at most PURGE_MAX): Redis is never held
 * for long, this node keeps one small request object whatever the inbox
 * size, and a larger inbox takes several requests (the answer says how
 * many remain). */
#include "fmacros.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat/auth.h"
#include "core/api_keys.h"
#include "core/common.h"
#include "core/config.h"
#include "core/jwt.h"
#include "core/context.h"
#include "core/log.h"
#include "http/http_api.h"
#include "http/http_internal.h"
#include "http/request.h"
#include "store/push_record.h"
#include "store/store.h"

#define PAGE_DEFAULT  50
#define PAGE_MAX      100      /* messages per page: bounds one answer */
#define PURGE_CHUNK   500      /* ids per script call: bounds one Redis step */
#define PURGE_DEFAULT 10000    /* ids per request unless "max" says */
#define PURGE_MAX     100000   /* ... and at most */

struct bcall;
typedef void action_fn(struct bcall *c);

/* One backend request in flight: holds a reference to its request. */
struct bcall {
    struct cg_http_req      *r;
    struct cg_server        *srv;
    const struct cg_api_key *key;
    action_fn               *then;     /* after the user was found */
    char                     who[CG_NAME_MAX + 1];
    uint64_t                 uid;
    char                     name[CG_NAME_MAX + 1];
    int                      disabled;
    int64_t                  after, limit, ttl_s;
    int64_t                  purged, left;
};

/* ---- the key, its bucket, its scope ------------------------------------ */

/* Take one request from key's bucket; 0, or the seconds to wait. */
static int64_t
bucket_take(struct cg_server *srv, size_t i)
{
    struct cg_rate_bucket *b = &srv->api_bucket[i];
    double rate = (double)srv->cfg->api_rate, burst = (double)srv->cfg->api_burst;
    int64_t now = (int64_t)cg_mono_ms();

    if (b->at_ms == 0)
        b->tokens = burst;
    else
        b->tokens = fmin(burst, b->tokens + (double)(now - b->at_ms) * rate / 1000.0);
    b->at_ms = now;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    return (int64_t)ceil((1.0 - b->tokens) / rate);
}

/* The key of r if it may do what scope says (0: any key); else r is
 * answered (401, 429, 403) and NULL returned. */
static const struct cg_api_key *
key_check(struct cg_http_req *r, unsigned scope)
{
    struct cg_server *srv = cg_http__srv(r);
    struct lws *wsi = cg_http__wsi(r);
    const struct cg_api_key *key = NULL;
    char tok[CG_API_SECRET_MAX + 1];
    int64_t wait;
    int n;

    n = wsi != NULL ? cg_request_bearer(wsi, tok, sizeof tok) : 0;
    if (n > 0)
        key = cg_api_keys_find(srv->cfg->api_keys_parsed, tok, (size_t)n);
    explicit_bzero(tok, sizeof tok);
    if (key == NULL) {
        cg_log_ctx(CG_LOG_INFO, cg_http__addr(r), "backend: %s refused: %s API key",
                   cg_http__path(r), n > 0 ? "unknown" : "no");
        cg_http__respond_error(r, 401, "missing or unknown API key");
        return NULL;
    }
    if ((wait = bucket_take(srv, cg_api_keys_index(srv->cfg->api_keys_parsed, key))) > 0) {
        cg_log_ctx(CG_LOG_INFO, cg_http__addr(r), "backend: key %s: %s refused: over "
                   "api_rate (%" PRId64 "/s)", key->name, cg_http__path(r),
                   srv->cfg->api_rate);
        cg_http__retry_after(r, wait);
        cg_http__respond_error(r, 429, "too many requests for this API key, retry later");
        return NULL;
    }
    if (scope != 0 && !(key->scopes & scope)) {
        char why[96];

        cg_log_ctx(CG_LOG_INFO, cg_http__addr(r), "backend: key %s: %s refused: no scope %s",
                   key->name, cg_http__path(r), cg_api_scope_name(scope));
        snprintf(why, sizeof why, "this API key lacks the scope %s", cg_api_scope_name(scope));
        cg_http__respond_error(r, 403, why);
        return NULL;
    }
    cg_log_ctx(CG_LOG_INFO, cg_http__addr(r), "backend: key %s: %s %s", key->name,
               cg_http__method(r) == CG_M_POST ? "POST" : "GET", cg_http__path(r));
    return key;
}

/* ---- helpers ------------------------------------------------------------- */

static struct bcall *
bcall_create(struct cg_http_req *r, const struct cg_api_key *key)
{
    struct bcall *c = cg_calloc(1, sizeof *c);

    if (c == NULL) {
        cg_http__respond_error(r, 500, "out of memory");
        return NULL;
    }
    c->r = cg_http__hold(r);
    c->srv = cg_http__srv(r);
    c->key = key;
    return c;
}

static void
bcall_end(struct bcall *c)
{
    cg_http__unref(c->r);
    cg_free(c);
}

/* Answer an auth or store error. */
static void
respond_err(struct cg_http_req *r, int err)
{
    switch (err) {
    case CG_E_NOTFOUND:  cg_http__respond_error(r, 404, "no such user"); break;
    case CG_E_EXISTS:    cg_http__respond_error(r, 409, "username is taken"); break;
    case CG_E_FORBIDDEN: cg_http__respond_error(r, 403, "the user is disabled"); break;
    case CG_E_INVAL:     cg_http__respond_error(r, 400, "invalid request"); break;
    case CG_E_NOMEM:     cg_http__respond_error(r, 500, "out of memory"); break;
    case CG_E_CLOSED:    cg_http__respond_error(r, 503, "server shutting down"); break;
    default:             cg_http__respond_error(r, 503, "store unavailable, retry later"); break;
    }
}

/* The body as a JSON object ({} when empty); answers 400 and returns NULL
 * otherwise. */
static json_t *
body_object(struct cg_http_req *r)
{
    size_t len;
    const char *b = cg_http__body(r, &len);
    json_t *j;

    if (len == 0)
        return json_object();
    j = json_loadb(b, len, JSON_REJECT_DUPLICATES, NULL);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        cg_http__respond_error(r, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* An optional integer member of j within [min, max] into *out (def when
 * absent); answers 400 and returns -1 otherwise. */
static int
int_member(struct cg_http_req *r, json_t *j, const char *name, int64_t min, int64_t max,
           int64_t def, int64_t *out)
{
    json_t *v = json_object_get(j, name);
    char why[128];

    *out = def;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(why, sizeof why, "\"%s\" must be an integer from %" PRId64 " to %" PRId64,
                 name, min, max);
        cg_http__respond_error(r, 400, why);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* An optional decimal query argument within [min, max]. */
static int
int_query(struct cg_http_req *r, const char *arg, int64_t min, int64_t max, int64_t def,
          int64_t *out)
{
    struct lws *wsi = cg_http__wsi(r);
    char buf[32], why[128];
    const char *v = wsi ? lws_get_urlarg_by_name(wsi, arg, buf, (int)sizeof buf) : NULL;
    char *end;
    long long n;

    *out = def;
    if (v == NULL)
        return 0;
    n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || *v == '-' || *v == '+' || n < min || n > max) {
        snprintf(why, sizeof why, "query %.*s must be an integer from %" PRId64 " to %" PRId64,
                 (int)strlen(arg) - 1, arg, min, max);
        cg_http__respond_error(r, 400, why);
        return -1;
    }
    *out = n;
    return 0;
}

static json_t *
user_json(const struct bcall *c)
{
    return json_pack("{s:I,s:s}", "uid", (json_int_t)c->uid, "username", c->name);
}

/* ---- create -------------------------------------------------------------- */

static void
on_created(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct bcall *c = data;

    (void)token;
    if (err == 0) {
        cg_log(CG_LOG_NOTICE, "backend: key %s created user %s (uid %" PRIu64 ")",
               c->key->name, who->name, who->uid);
        cg_http__respond_json(c->r, 201, json_pack("{s:I,s:s}", "uid", (json_int_t)who->uid,
                                                   "username", who->name));
    } else {
        respond_err(c->r, err);
    }
    bcall_end(c);
}

void
cg_http_backend_users(struct cg_http_req *r, const char *rest)
{
    const struct cg_api_key *key;
    json_t *j, *jn, *jp;
    const char *why = NULL, *name, *pw = NULL;
    size_t nlen, plen = 0;
    struct bcall *c;
    int rc;

    (void)rest;
    if ((key = key_check(r, CG_SCOPE_USERS_WRITE)) == NULL || (j = body_object(r)) == NULL)
        return;
    jn = json_object_get(j, "username");
    jp = json_object_get(j, "password");
    if (!json_is_string(jn) || (jp != NULL && !json_is_string(jp))) {
        cg_http__respond_error(r, 400, "expected {\"username\":..., \"password\":... (optional)}");
        goto out;
    }
    name = json_string_value(jn);
    nlen = json_string_length(jn);
    if (jp != NULL) {
        pw = json_string_value(jp);
        plen = json_string_length(jp);
    }
    if ((why = cg_auth_name_refused(name, nlen)) != NULL) {
        cg_http__respond_error(r, 400, why);
        goto out;
    }
    if (jp != NULL && (plen < 8 || plen > 128 || memchr(pw, '\0', plen) != NULL)) {
        cg_http__respond_error(r, 400, "a password is 8-128 bytes");
        goto out;
    }
    if ((c = bcall_create(r, key)) == NULL)
        goto out;
    rc = cg_auth_create_user(c->srv->auth, name, nlen, pw, plen, key->name, on_created, c);
    if (rc < 0) {
        respond_err(r, rc);
        bcall_end(c);
    }
out:
    if (jp != NULL && json_is_string(jp))
        explicit_bzero((char *)json_string_value(jp), json_string_length(jp));
    json_decref(j);
}

/* ---- one user: found first, then the action --------------------------- */

static void
on_found(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct bcall *c = data;

    (void)token;
    if (err != 0) {
        respond_err(c->r, err);
        return bcall_end(c);
    }
    c->uid = who->uid;
    snprintf(c->name, sizeof c->name, "%s", who->name);
    c->disabled = who->disabled;
    c->then(c);
}

/* Find c->who, then run c->then (which ends c). */
static void
find_then(struct bcall *c)
{
    int rc = cg_auth_lookup(c->srv->auth, c->who, strlen(c->who), on_found, c);

    if (rc < 0) {
        respond_err(c->r, rc);
        bcall_end(c);
    }
}

static void
do_show(struct bcall *c)
{
    json_t *j = user_json(c);

    json_object_set_new(j, "disabled", json_boolean(c->disabled));
    cg_http__respond_json(c->r, 200, j);
    bcall_end(c);
}

/* disable, enable, delete, mint: one auth call each. */
static void
on_admin(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct bcall *c = data;
    json_t *j;

    if (err != 0) {
        respond_err(c->r, err);
        return bcall_end(c);
    }
    c->uid = who->uid;
    snprintf(c->name, sizeof c->name, "%s", who->name);
    j = user_json(c);
    if (token != NULL) {
        json_object_set_new(j, "token", json_string(token));
        json_object_set_new(j, "expiresAt", json_integer(who->expires_ms));
        cg_http__respond_json(c->r, 201, j);
    } else if (c->then == NULL) {         /* delete */
        json_object_set_new(j, "deleted", json_true());
        cg_http__respond_json(c->r, 200, j);
    } else {
        json_object_set_new(j, "disabled", json_boolean(who->disabled));
        cg_http__respond_json(c->r, 200, j);
    }
    bcall_end(c);
}

static int
admin_call(struct bcall *c, int what)
{
    cg_auth *a = c->srv->auth;
    size_t n = strlen(c->who);

    switch (what) {
    case 'd': c->then = do_show; return cg_auth_set_disabled(a, c->who, n, 1, c->key->name, on_admin, c);
    case 'e': c->then = do_show; return cg_auth_set_disabled(a, c->who, n, 0, c->key->name, on_admin, c);
    case 'x': c->then = NULL; return cg_auth_delete_user(a, c->who, n, c->key->name, on_admin, c);
    default:  c->then = do_show; return cg_auth_mint(a, c->who, n, c->ttl_s, c->key->name, on_admin, c);
    }
}

/* ---- pending ------------------------------------------------------------- */

static void
on_pending_count(const struct cg_store_reply *rep, int err, void *data)
{
    struct bcall *c = data;
    json_t *j;
    long long n, oldest, now = cg_now_ms();

    if (err < 0 || cg_store_reply_type(rep) != CG_STORE_REPLY_ARRAY ||
        cg_store_reply_count(rep) != 2) {
        respond_err(c->r, err < 0 ? err : CG_E_STORE);
        return bcall_end(c);
    }
    n = cg_store_reply_integer(cg_store_reply_element(rep, 0));
    oldest = cg_store_reply_integer(cg_store_reply_element(rep, 1));
    j = user_json(c);
    json_object_set_new(j, "count", json_integer(n));
    json_object_set_new(j, "oldestTime", oldest > 0 ? json_integer(oldest) : json_null());
    json_object_set_new(j, "oldestAgeMs", oldest > 0 ? json_integer(now > oldest ? now - oldest : 0)
                                                     : json_null());
    cg_http__respond_json(c->r, 200, j);
    bcall_end(c);
}

static void
do_pending_count(struct bcall *c)
{
    char kp[CG_STORE_KEY_MAX], km[CG_STORE_KEY_MAX];
    const char *argv[] = { kp, km };
    size_t lens[2];

    cg_store_key(kp, sizeof kp, c->uid, "pending");
    cg_store_key(km, sizeof km, c->uid, "msg");
    lens[0] = strlen(kp);
    lens[1] = strlen(km);
    if (cg_store_eval_keyed(c->srv->store, c->uid, CG_SCRIPT_PENDING, 2, 2, argv, lens,
                            on_pending_count, c) < 0) {
        respond_err(c->r, CG_E_STORE);
        bcall_end(c);
    }
}

/* One stored body's metadata (never its content: operators see who sent
 * what when, not what was said). */
static json_t *
message_meta(const char *id, const char *body, size_t len)
{
    json_t *b = body ? json_loadb(body, len, 0, NULL) : NULL, *m;

    m = json_pack("{s:I}", "id", (json_int_t)strtoll(id, NULL, 10));
    if (json_is_object(b)) {
        const char *keys[] = { "chatID", "sender", "senderId", "time" };
        const char *as[] = { "msgID", "sender", "senderId", "time" };

        for (size_t i = 0; i < 4; i++) {
            json_t *v = json_object_get(b, keys[i]);
            if (v != NULL)
                json_object_set(m, as[i], v);
        }
        json_object_set_new(m, "bytes", json_integer((json_int_t)len));
    }
    json_decref(b);
    return m;
}

static void
on_pending_page(const struct cg_store_reply *rep, int err, void *data)
{
    struct bcall *c = data;
    json_t *j, *list;
    size_t n = cg_store_reply_count(rep), blen;
    const char *id = NULL, *body;

    if (err < 0 || cg_store_reply_type(rep) != CG_STORE_REPLY_ARRAY || n % 2 != 0) {
        respond_err(c->r, err < 0 ? err : CG_E_STORE);
        return bcall_end(c);
    }
    list = json_array();
    for (size_t i = 0; i + 1 < n; i += 2) {
        id = cg_store_reply_str(cg_store_reply_element(rep, i), NULL);
        body = cg_store_reply_str(cg_store_reply_element(rep, i + 1), &blen);
        json_array_append_new(list, message_meta(id ? id : "0", body, blen));
    }
    j = user_json(c);
    json_object_set_new(j, "messages", list);
    /* A full page may have more after it: the next page starts after its
     * last id. */
    json_object_set_new(j, "next", (int64_t)(n / 2) == c->limit && id != NULL
                                   ? json_integer(strtoll(id, NULL, 10)) : json_null());
    cg_http__respond_json(c->r, 200, j);
    bcall_end(c);
}

static void
do_pending_page(struct bcall *c)
{
    char kp[CG_STORE_KEY_MAX], km[CG_STORE_KEY_MAX], after[24], limit[24];
    const char *argv[] = { kp, km, "page", after, limit };
    size_t lens[5];

    cg_store_key(kp, sizeof kp, c->uid, "pending");
    cg_store_key(km, sizeof km, c->uid, "msg");
    snprintf(after, sizeof after, "%" PRId64, c->after);
    snprintf(limit, sizeof limit, "%" PRId64, c->limit);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    if (cg_store_eval_keyed(c->srv->store, c->uid, CG_SCRIPT_PENDING_ADMIN, 2, 5, argv,
                            lens, on_pending_page, c) < 0) {
        respond_err(c->r, CG_E_STORE);
        bcall_end(c);
    }
}

static void
on_redelivered(const struct cg_store_reply *rep, int err, void *data)
{
    struct bcall *c = data;
    json_t *j;

    if (err < 0 || cg_store_reply_type(rep) != CG_STORE_REPLY_INTEGER) {
        respond_err(c->r, err < 0 ? err : CG_E_STORE);
        return bcall_end(c);
    }
    cg_log(CG_LOG_NOTICE, "backend: key %s asked for a redelivery to user %s (uid %" PRIu64
           "): %lld node(s) with a session of the user", c->key->name, c->name, c->uid,
           cg_store_reply_integer(rep));
    j = user_json(c);
    json_object_set_new(j, "nodes", json_integer(cg_store_reply_integer(rep)));
    cg_http__respond_json(c->r, 202, j);
    bcall_end(c);
}

static void
do_redeliver(struct bcall *c)
{
    char ch[48], msg[2 + CG_PUSH_REASON_MAX];
    struct cg_push_record rec = { .type = CG_PUSH_REINIT, .data = "redeliver", .len = 9 };
    const char *argv[] = { "PUBLISH", ch, msg };
    size_t lens[3];

    cg_store_channel(ch, sizeof ch, c->uid);
    cg_push_record_encode(&rec, msg, sizeof msg);
    lens[0] = 7;
    lens[1] = strlen(ch);
    lens[2] = strlen(msg);
    if (cg_store_command(c->srv->store, 3, argv, lens, on_redelivered, c) < 0) {
        respond_err(c->r, CG_E_STORE);
        bcall_end(c);
    }
}

static void purge_step(struct bcall *c);

static void
purge_done(struct bcall *c, long long remaining)
{
    json_t *j = user_json(c);

    cg_log(CG_LOG_NOTICE, "backend: audit: key %s purged %" PRId64 " pending message%s of "
           "user %s (uid %" PRIu64 "); %lld remain", c->key->name, c->purged,
           c->purged == 1 ? "" : "s", c->name, c->uid, remaining);
    json_object_set_new(j, "purged", json_integer(c->purged));
    json_object_set_new(j, "remaining", json_integer(remaining));
    json_object_set_new(j, "done", json_boolean(remaining == 0));
    cg_http__respond_json(c->r, 200, j);
    bcall_end(c);
}

static void
on_purged(const struct cg_store_reply *rep, int err, void *data)
{
    struct bcall *c = data;
    long long n, remaining;

    if (err < 0 || cg_store_reply_type(rep) != CG_STORE_REPLY_ARRAY ||
        cg_store_reply_count(rep) != 2) {
        if (c->purged > 0)      /* what was purged stays purged: say so */
            cg_log(CG_LOG_NOTICE, "backend: audit: key %s purged %" PRId64 " pending "
                   "messages of user %s (uid %" PRIu64 ") before the store failed",
                   c->key->name, c->purged, c->name, c->uid);
        respond_err(c->r, err < 0 ? err : CG_E_STORE);
        return bcall_end(c);
    }
    n = cg_store_reply_integer(cg_store_reply_element(rep, 0));
    remaining = cg_store_reply_integer(cg_store_reply_element(rep, 1));
    c->purged += n;
    c->left -= n;
    if (n == 0 || remaining == 0 || c->left <= 0 || cg_http__wsi(c->r) == NULL ||
        c->srv->stopping)
        return purge_done(c, remaining);
    purge_step(c);
}

static void
purge_step(struct bcall *c)
{
    char kp[CG_STORE_KEY_MAX], km[CG_STORE_KEY_MAX], ku[CG_STORE_KEY_MAX];
    char ks[CG_STORE_KEY_MAX], max[24];
    const char *argv[] = { kp, km, ku, ks, "purge", max };
    size_t lens[6];

    cg_store_key(kp, sizeof kp, c->uid, "pending");
    cg_store_key(km, sizeof km, c->uid, "msg");
    cg_store_key(ku, sizeof ku, c->uid, "user");
    cg_store_key(ks, sizeof ks, c->uid, "psend");
    snprintf(max, sizeof max, "%" PRId64, c->left < PURGE_CHUNK ? c->left : PURGE_CHUNK);
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    if (cg_store_eval_keyed(c->srv->store, c->uid, CG_SCRIPT_PENDING_ADMIN, 4, 6, argv,
                            lens, on_purged, c) < 0) {
        respond_err(c->r, CG_E_STORE);
        bcall_end(c);
    }
}

/* ---- the actions on one user ----------------------------------------- */

enum act { A_SHOW, A_DISABLE, A_ENABLE, A_DELETE, A_MINT, A_PCOUNT, A_PPAGE, A_PREDO,
           A_PURGE };

static const struct {
    const char         *suffix;   /* after /users/{x} */
    enum cg_http_method method;   /* GET takes HEAD too */
    unsigned            scope;    /* 0: any key */
    enum act            act;
} actions[] = {
    { "",                   CG_M_GET,  0,                      A_SHOW },
    { "/disable",           CG_M_POST, CG_SCOPE_USERS_WRITE,   A_DISABLE },
    { "/enable",            CG_M_POST, CG_SCOPE_USERS_WRITE,   A_ENABLE },
    { "/delete",            CG_M_POST, CG_SCOPE_USERS_WRITE,   A_DELETE },
    { "/tokens",            CG_M_POST, CG_SCOPE_TOKENS_MINT,   A_MINT },
    { "/pending",           CG_M_GET,  CG_SCOPE_PENDING_READ,  A_PCOUNT },
    { "/pending/messages",  CG_M_GET,  CG_SCOPE_PENDING_READ,  A_PPAGE },
    { "/pending/redeliver", CG_M_POST, CG_SCOPE_PENDING_WRITE, A_PREDO },
    { "/pending/purge",     CG_M_POST, CG_SCOPE_PENDING_WRITE, A_PURGE },
};

void
cg_http_backend_user(struct cg_http_req *r, const char *rest)
{
    size_t wlen = strcspn(rest, "/");
    const char *suffix = rest + wlen;
    enum cg_http_method m = cg_http__method(r);
    const struct cg_api_key *key;
    struct bcall *c;
    json_t *j = NULL;
    size_t i;
    int known = 0, rc = 0;

    if (m == CG_M_HEAD)
        m = CG_M_GET;
    for (i = 0; i < sizeof actions / sizeof *actions; i++) {
        if (strcmp(actions[i].suffix, suffix) != 0)
            continue;
        known = 1;
        if (actions[i].method == m)
            break;
    }
    /* The key first: without one, nothing about the routes is told. */
    if ((key = key_check(r, i < sizeof actions / sizeof *actions ? actions[i].scope : 0)) == NULL)
        return;
    if (i == sizeof actions / sizeof *actions) {
        cg_http__respond_error(r, known ? 405 : 404, known ? "method not allowed" : "not found");
        return;
    }
    if (wlen == 0 || wlen > CG_NAME_MAX) {
        cg_http__respond_error(r, 404, "no such user");
        return;
    }
    if (m == CG_M_POST && (j = body_object(r)) == NULL)
        return;
    if ((c = bcall_create(r, key)) == NULL)
        goto out;
    memcpy(c->who, rest, wlen);
    switch (actions[i].act) {
    case A_SHOW:    c->then = do_show; find_then(c); break;
    case A_DISABLE: rc = admin_call(c, 'd'); break;
    case A_ENABLE:  rc = admin_call(c, 'e'); break;
    case A_DELETE:  rc = admin_call(c, 'x'); break;
    case A_MINT:
        if (int_member(r, j, "ttlSeconds", 1, c->srv->cfg->token_ttl_s, 0, &c->ttl_s) < 0) {
            bcall_end(c);
            goto out;
        }
        rc = admin_call(c, 'm');
        break;
    case A_PCOUNT:  c->then = do_pending_count; find_then(c); break;
    case A_PPAGE:
        if (int_query(r, "after=", 0, INT64_MAX, 0, &c->after) < 0 ||
            int_query(r, "limit=", 1, PAGE_MAX, PAGE_DEFAULT, &c->limit) < 0) {
            bcall_end(c);
            goto out;
        }
        c->then = do_pending_page;
        find_then(c);
        break;
    case A_PREDO:   c->then = do_redeliver; find_then(c); break;
    case A_PURGE:
        if (int_member(r, j, "max", 1, PURGE_MAX, PURGE_DEFAULT, &c->left) < 0) {
            bcall_end(c);
            goto out;
        }
        c->then = purge_step;
        find_then(c);
        break;
    }
    if (rc < 0) {
        respond_err(r, rc);
        bcall_end(c);
    }
out:
    json_decref(j);
}

/* ---- revoke an app token's jti ---------------------------------------------- */

static void
on_revoked(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct bcall *c = data;

    (void)who;
    (void)token;
    if (err == 0)
        cg_http__respond_json(c->r, 200, json_pack("{s:b,s:I}", "revoked", 1, "until",
                                                   (json_int_t)c->ttl_s));
    else
        respond_err(c->r, err);
    bcall_end(c);
}

void
cg_http_backend_revoke(struct cg_http_req *r, const char *rest)
{
    const struct cg_api_key *key;
    struct bcall *c;
    json_t *j, *jti;
    int64_t exp;
    int rc;

    (void)rest;
    if ((key = key_check(r, CG_SCOPE_TOKENS_REVOKE)) == NULL || (j = body_object(r)) == NULL)
        return;
    jti = json_object_get(j, "jti");
    if (!json_is_string(jti) || json_string_length(jti) == 0 ||
        json_string_length(jti) > CG_JWT_CLAIM_MAX) {
        cg_http__respond_error(r, 400, "expected {\"jti\": a string of 1-256 bytes, "
                               "\"exp\": the token's exp}");
        goto out;
    }
    /* exp: seconds since the epoch, as in the token; up to the year 9999. */
    if (json_object_get(j, "exp") == NULL) {
        cg_http__respond_error(r, 400, "\"exp\" (the token's exp, seconds) is required");
        goto out;
    }
    if (int_member(r, j, "exp", 0, 253402300799, 0, &exp) < 0 ||
        (c = bcall_create(r, key)) == NULL)
        goto out;
    c->ttl_s = (exp + c->srv->cfg->jwt_leeway_s) * 1000;   /* the answer's "until", ms */
    rc = cg_auth_revoke_jti(c->srv->auth, json_string_value(jti), json_string_length(jti),
                            exp, key->name, on_revoked, c);
    if (rc < 0) {
        respond_err(r, rc);
        bcall_end(c);
    }
out:
    json_decref(j);
}
