/* http_api.c - the HTTP side of PROTOCOL.md section 1: register, login,
 * logout, user lookup, healthz, readyz, metrics, and the web client's
 * static files at {base}/. Which of them a request is (or whether it is
 * 404 or 405) the route table in server/routes.c has decided before the
 * request gets here; this file owns it from then on.
 *
 * Each request gets a struct cg_http_req on the heap. The connection holds
 * one reference and each asynchronous operation (Redis, the password
 * thread pool) holds one; the connection closing only clears req->wsi, so
 * a late answer finds no connection and is dropped. A keep-alive
 * connection detaches its finished request before the next one starts.
 *
 *   HTTP -> [BODY ...] -> BODY_COMPLETION -> handler -> (async) -> respond
 *        -> WRITEABLE: headers -> WRITEABLE: body -> transaction completed
 *
 * Bodies are bounded by http_max_body (413 beyond it, decided from
 * Content-Length before anything is read), and in time by the body clock
 * of request.h (408 once it runs out, with Connection: close). Every
 * error is {"error":"reason"}.
 *
 * Framing (request.h, cg_request_body_framing). lws 4.1 frames a request
 * body by an atoll() of Content-Length and reads up to 100 MB as the body
 * of a POST without one; whatever it does not take as this body, it parses
 * as the next request on the connection. So a request whose length is
 * refused (a Content-Length that is not one decimal number, or a body on
 * another method than POST: 400; over http_max_body: 413;
 * Transfer-Encoding, which lws cannot decode: 411), or a POST without
 * Content-Length, is answered with "Connection: close" and
 * the connection is closed once the answer is written (close_after): no
 * byte after such a request is ever read as a request of its own. */
#include "fmacros.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "chat/auth.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"
#include "core/log.h"
#include "http/http_api.h"
#include "http/http_body.h"
#include "http/http_internal.h"
#include "http/linger.h"
#include "http/request.h"
#include "session/registry.h"
#include "store/store.h"

struct cg_http_req {
    struct cg_server *srv;
    struct lws       *wsi;          /* NULL once the connection is gone */
    struct cg_pss    *pss;          /* lws's per-session data while attached */
    int               refs;
    enum cg_http_method method;
    char              path[CG_HTTP_PATH_MAX]; /* relative to the base path */
    /* what the route table found (struct cg_http_route) */
    cg_http_handler  *handler;
    size_t            rest;
    int               files;
    unsigned          route_status;
    char              addr[64];
    struct cg_wbuf    body;
    int               body_over;    /* more than http_max_body arrived */
    struct cg_body_clock clock;     /* while the body is read (request.h) */
    int               close_after;  /* close once answered (see the top) */
    int               routed;
    /* response */
    unsigned          status;
    int64_t           retry_after_s; /* 429: the Retry-After header */
    const char       *ctype;
    struct cg_wbuf    resp;
    int               responding;   /* status and body are final */
    int               rx_off;       /* reading paused while the answer is
                                       computed (see wait_quietly) */
    int               headers_sent;
    int               flushing;     /* answered; lws still sends the rest */
};

static void req_unref(struct cg_http_req *r);
static void detach(struct cg_pss *pss);
static int answered(struct cg_pss *pss, struct cg_http_req *r);

/* ---- responses ---------------------------------------------------------- */

static void
respond(struct cg_http_req *r, unsigned status, const char *ctype,
        const char *body, size_t len)
{
    if (r->responding)
        return;
    r->responding = 1;
    r->status = status;
    r->ctype = ctype;
    cg_wbuf_reset(&r->resp);
    if (len && cg_wbuf_append(&r->resp, body, len) < 0) {
        r->status = 500;
        r->resp.len = 0;
    }
    if (r->wsi) {
        if (r->rx_off) {
            lws_rx_flow_control(r->wsi, 1);
            r->rx_off = 0;
        }
        lws_callback_on_writable(r->wsi);
    }
}

/* The answer comes later (Redis, the password pool). lws 4.1 does not
 * read a connection in the middle of a request, so a client that hangs up
 * meanwhile would keep its socket readable and the loop spinning: stop
 * polling for input until the answer is ready. */
static void
wait_quietly(struct cg_http_req *r)
{
    if (r->wsi != NULL && !r->responding && !r->rx_off &&
        !lws_partial_buffered(r->wsi)) {
        lws_rx_flow_control(r->wsi, 0);
        r->rx_off = 1;
    }
}

static void
respond_json(struct cg_http_req *r, unsigned status, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    if (s == NULL) {
        respond(r, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
    } else {
        respond(r, status, "application/json", s, strlen(s));
        free(s);
    }
    json_decref(obj);
}

static void
respond_error(struct cg_http_req *r, unsigned status, const char *why)
{
    respond_json(r, status, json_pack("{s:s}", "error", why));
}

/* Map an auth/store error to its HTTP status and message. */
static void
respond_auth_error(struct cg_http_req *r, int err)
{
    switch (err) {
    case CG_E_AUTH:     respond_error(r, 401, "missing, invalid or expired token"); break;
    case CG_E_NOTFOUND: respond_error(r, 404, "no such user"); break;
    case CG_E_EXISTS:   respond_error(r, 409, "username is taken"); break;
    case CG_E_FORBIDDEN: respond_error(r, 403, "account disabled"); break;
    case CG_E_INVAL:    respond_error(r, 400, "invalid request"); break;
    case CG_E_LIMIT:    respond_error(r, 429, "too many attempts, try again later"); break;
    case CG_E_CLOSED:   respond_error(r, 503, "server shutting down"); break;
    default:            respond_error(r, 503, "store unavailable, retry later"); break;
    }
}

/* ---- async plumbing ------------------------------------------------------ */

static struct cg_http_req *
req_hold(struct cg_http_req *r)
{
    r->refs++;
    return r;
}

static void
req_unref(struct cg_http_req *r)
{
    if (--r->refs > 0)
        return;
    if (r->body.base)                 /* may hold a password */
        explicit_bzero(r->body.base, r->body.pre + r->body.cap);
    cg_wbuf_cleanup(&r->body);
    cg_wbuf_cleanup(&r->resp);
    cg_free(r);
}

/* Decode r's credentials body; answers 400 and returns -1 on failure. */
static int
body_credentials(struct cg_http_req *r, struct cg_credentials *c)
{
    const char *why = NULL;

    if (cg_http_decode_credentials(r->body.len ? cg_wbuf_data(&r->body) : NULL,
                                   r->body.len, c, &why) == 0)
        return 0;
    respond_error(r, 400, why);
    return -1;
}

/* ---- for the backend API (http_internal.h) ------------------------------ */

void
cg_http__respond_json(struct cg_http_req *r, unsigned status, json_t *obj)
{
    respond_json(r, status, obj);
}

void
cg_http__respond_error(struct cg_http_req *r, unsigned status, const char *why)
{
    respond_error(r, status, why);
}

struct cg_http_req *
cg_http__hold(struct cg_http_req *r)
{
    return req_hold(r);
}

void
cg_http__unref(struct cg_http_req *r)
{
    req_unref(r);
}

struct cg_server *cg_http__srv(const struct cg_http_req *r) { return r->srv; }
struct lws *cg_http__wsi(const struct cg_http_req *r) { return r->wsi; }
enum cg_http_method cg_http__method(const struct cg_http_req *r) { return r->method; }
const char *cg_http__path(const struct cg_http_req *r) { return r->path; }
const char *cg_http__addr(const struct cg_http_req *r) { return r->addr; }

const char *
cg_http__body(const struct cg_http_req *r, size_t *len)
{
    *len = r->body.len;
    return r->body.len ? cg_wbuf_data(&r->body) : NULL;
}

void
cg_http__retry_after(struct cg_http_req *r, int64_t seconds)
{
    r->retry_after_s = seconds;
}

/* ---- handlers -------------------------------------------------------------- */

static void
on_registered(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct cg_http_req *r = data;

    (void)token;
    if (err == CG_E_LIMIT && who != NULL)
        r->retry_after_s = who->retry_after_s;
    if (err == 0)
        respond_json(r, 201, json_pack("{s:I,s:s}", "uid", (json_int_t)who->uid,
                                       "username", who->name));
    else if (err == CG_E_INVAL)
        respond_error(r, 400, "username must be 1-32 of [A-Za-z0-9_.-] and "
                      "password 8-128 bytes");
    else
        respond_auth_error(r, err);
    req_unref(r);
}

void
cg_http_register(struct cg_http_req *r, const char *rest)
{
    struct cg_credentials c;

    const char *why;
    int rc;

    (void)rest;
    if (body_credentials(r, &c) < 0)
        return;
    if ((why = cg_auth_name_refused(c.name, c.name_len)) != NULL) {
        respond_error(r, 400, why);
    } else if ((rc = cg_auth_register(r->srv->auth, c.name, c.name_len, c.password,
                                      c.password_len, r->addr, on_registered,
                                      req_hold(r))) < 0) {
        req_unref(r);
        if (rc == CG_E_INVAL)
            respond_error(r, 400, "a password is 8-128 bytes");
        else
            respond_auth_error(r, rc);
    }
    cg_credentials_cleanup(&c);
}

static void
on_logged_in(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct cg_http_req *r = data;

    if (err == CG_E_LIMIT && who != NULL)
        r->retry_after_s = who->retry_after_s;
    if (err == 0)
        respond_json(r, 200, json_pack("{s:s,s:I,s:s,s:I}", "token", token,
                                       "uid", (json_int_t)who->uid,
                                       "username", who->name,
                                       "expiresAt", (json_int_t)who->expires_ms));
    else if (err == CG_E_AUTH || err == CG_E_NOTFOUND || err == CG_E_INVAL)
        respond_error(r, 401, "wrong username or password");
    else
        respond_auth_error(r, err);
    req_unref(r);
}

void
cg_http_login(struct cg_http_req *r, const char *rest)
{
    struct cg_credentials c;
    int rc;

    (void)rest;
    if (body_credentials(r, &c) < 0)
        return;
    rc = cg_auth_login(r->srv->auth, c.name, c.name_len, c.password, c.password_len,
                       r->addr, on_logged_in, req_hold(r));
    if (rc < 0) {
        req_unref(r);
        if (rc == CG_E_AUTH)
            respond_error(r, 401, "wrong username or password");
        else
            respond_auth_error(r, rc);
    }
    cg_credentials_cleanup(&c);
}

static void
on_logged_out(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct cg_http_req *r = data;

    (void)who;
    (void)token;
    if (err == 0)
        respond(r, 204, "application/json", NULL, 0);
    else
        respond_auth_error(r, err);
    req_unref(r);
}

void
cg_http_logout(struct cg_http_req *r, const char *rest)
{
    char tok[CG_TOKEN_MAX + 1];
    int n;

    (void)rest;
    n = r->wsi ? cg_request_token(r->wsi, tok, sizeof tok) : 0;
    if (n <= 0 ||
        cg_auth_logout(r->srv->auth, tok, (size_t)n, on_logged_out, req_hold(r)) < 0) {
        if (n > 0)
            req_unref(r);
        respond_auth_error(r, CG_E_AUTH);
    }
    explicit_bzero(tok, sizeof tok);
}

/* GET /api/users/{x}: the token first, then the lookup. */
struct lookup {
    struct cg_http_req *r;
    char                who[64];
};

static void
on_looked_up(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct lookup *lk = data;
    struct cg_http_req *r = lk->r;

    (void)token;
    if (err == 0)
        respond_json(r, 200, json_pack("{s:I,s:s,s:b}", "uid", (json_int_t)who->uid,
                                       "username", who->name,
                                       "online", who->online > 0));
    else
        respond_auth_error(r, err);
    cg_free(lk);
    req_unref(r);
}

static void
on_lookup_authed(int err, const struct cg_principal *who, const char *token, void *data)
{
    struct lookup *lk = data;
    struct cg_http_req *r = lk->r;

    (void)who;
    (void)token;
    if (err != 0) {
        respond_auth_error(r, err);
    } else if (cg_auth_lookup(r->srv->auth, lk->who, strlen(lk->who), on_looked_up,
                              lk) == 0) {
        return;                       /* lk and the reference move on */
    } else {
        respond_error(r, 404, "no such user");
    }
    cg_free(lk);
    req_unref(r);
}

void
cg_http_user(struct cg_http_req *r, const char *rest)
{
    char tok[CG_TOKEN_MAX + 1];
    struct lookup *lk;
    int n;

    n = r->wsi ? cg_request_token(r->wsi, tok, sizeof tok) : 0;
    if (n <= 0) {
        respond_auth_error(r, CG_E_AUTH);
        return;
    }
    if (strlen(rest) == 0 || strlen(rest) > CG_NAME_MAX || strchr(rest, '/')) {
        respond_error(r, 404, "no such user");
        return;
    }
    lk = cg_calloc(1, sizeof *lk);
    if (lk == NULL) {
        respond_error(r, 500, "out of memory");
        return;
    }
    lk->r = req_hold(r);
    snprintf(lk->who, sizeof lk->who, "%s", rest);
    if (cg_auth_check_token(r->srv->auth, tok, (size_t)n, on_lookup_authed, lk) < 0) {
        cg_free(lk);
        req_unref(r);
        respond_auth_error(r, CG_E_AUTH);
    }
    explicit_bzero(tok, sizeof tok);
}

void
cg_http_healthz(struct cg_http_req *r, const char *rest)
{
    (void)rest;
    respond(r, 200, "text/plain", "ok\n", 3);
}

void
cg_http_readyz(struct cg_http_req *r, const char *rest)
{
    (void)rest;
    if (r->srv->stopping)
        respond(r, 503, "text/plain", "stopping\n", 9);
    else if (r->srv->store_ready && cg_store_ready(r->srv->store))
        respond(r, 200, "text/plain", "ready\n", 6);
    else
        respond(r, 503, "text/plain", "redis unavailable\n", 18);
}

/* Gauges that are computed rather than counted, appended after the
 * metrics.c tables. */
void
cg_http_metrics(struct cg_http_req *r, const char *rest)
{
    struct cg_server *srv = r->srv;
    const struct cg_metrics *m = &srv->metrics;
    char *out = NULL, extra[2048];
    size_t len = 0, cap = 0;
    int64_t now = cg_now_ms();
    double age = m->pending_oldest_ms > 0 && now > m->pending_oldest_ms
                     ? (double)(now - m->pending_oldest_ms) / 1000.0 : 0.0;

    (void)rest;
    snprintf(extra, sizeof extra,
             "# HELP chatgate_sessions Live STOMP sessions on this node.\n"
             "# TYPE chatgate_sessions gauge\nchatgate_sessions %zu\n"
             "# HELP chatgate_users Users with at least one session on this node.\n"
             "# TYPE chatgate_users gauge\nchatgate_users %zu\n"
             "# HELP chatgate_redis_ready 1 when Redis answers and scripts are loaded.\n"
             "# TYPE chatgate_redis_ready gauge\nchatgate_redis_ready %d\n"
             "# HELP chatgate_redis_inflight Redis commands sent and not yet answered.\n"
             "# TYPE chatgate_redis_inflight gauge\nchatgate_redis_inflight %zu\n"
             "# HELP chatgate_draining 1 while a graceful stop drains this node.\n"
             "# TYPE chatgate_draining gauge\nchatgate_draining %d\n"
             "# HELP chatgate_pending_oldest_age_seconds Age of the oldest unconfirmed "
             "message of the users connected to this node (last sample; 0: none).\n"
             "# TYPE chatgate_pending_oldest_age_seconds gauge\n"
             "chatgate_pending_oldest_age_seconds %.3f\n"
             "# HELP chatgate_info This node's id and version.\n"
             "# TYPE chatgate_info gauge\nchatgate_info{node=\"%s\",version=\"%s\"} 1\n",
             cg_registry_count(srv->registry), cg_registry_user_count(srv->registry),
             srv->store_ready && cg_store_ready(srv->store),
             srv->store ? cg_store_inflight(srv->store) : 0, srv->stopping, age,
             srv->node_id, CG_VERSION);
    if (cg_metrics_render(m, extra, &out, &len, &cap) < 0)
        respond_error(r, 500, "out of memory");
    else
        respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", out, len);
    cg_free(out);
}

static const struct {
    const char *ext, *type;
} mime_types[] = {
    { ".html", "text/html; charset=utf-8" },
    { ".js",   "text/javascript; charset=utf-8" },
    { ".mjs",  "text/javascript; charset=utf-8" },
    { ".css",  "text/css; charset=utf-8" },
    { ".json", "application/json" },
    { ".map",  "application/json" },
    { ".svg",  "image/svg+xml" },
    { ".png",  "image/png" },
    { ".ico",  "image/x-icon" },
    { ".txt",  "text/plain; charset=utf-8" },
};

/* Serve a file of the web client. lws streams it and completes the
 * transaction itself. Paths with a dot segment or a backslash are refused
 * so nothing outside web_root can be named. */
static int
serve_file(struct cg_http_req *r)
{
    const char *p = r->path, *dot, *type = NULL;
    struct lws *wsi;
    char file[1024];
    int n;

    if (strcmp(p, "/") == 0)
        p = "/index.html";
    if (strstr(p, "/.") || strchr(p, '\\')) {
        respond_error(r, 404, "not found");
        return 0;
    }
    dot = strrchr(p, '.');
    for (size_t i = 0; dot && i < sizeof mime_types / sizeof *mime_types; i++)
        if (strcmp(dot, mime_types[i].ext) == 0)
            type = mime_types[i].type;
    if (type == NULL) {
        respond_error(r, 404, "not found");
        return 0;
    }
    n = snprintf(file, sizeof file, "%s%s", r->srv->cfg->web_root, p);
    if (n < 0 || (size_t)n >= sizeof file) {
        respond_error(r, 404, "not found");
        return 0;
    }
    /* lws owns this transaction now and frees the per-session data when
     * it completes: let go of the request first. */
    wsi = r->wsi;
    detach(r->pss);
    n = lws_serve_http_file(wsi, file, type,
                            "\x0fx-content-type-options:\x07nosniff", 0);
    if (n < 0)
        return -1;
    if (n > 0 && lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

/* Run the handler the route table found for r, or answer what it found
 * instead: a file, 404 or 405. */
static int
route(struct cg_http_req *r)
{
    r->routed = 1;
    if (r->handler != NULL) {
        r->handler(r, r->path + r->rest);
        wait_quietly(r);
        return 0;
    }
    if (r->files)
        return serve_file(r);
    respond_error(r, r->route_status,
                  r->route_status == 405 ? "method not allowed" : "not found");
    return 0;
}

/* ---- lws events ------------------------------------------------------------ */

static void
detach(struct cg_pss *pss)
{
    struct cg_http_req *r;

    /* lws frees the per-session data when a transaction completes, so
     * later events on the connection may come with none. */
    if (pss == NULL || pss->kind != CG_PSS_HTTP || (r = pss->obj) == NULL)
        return;
    pss->obj = NULL;
    pss->kind = CG_PSS_NONE;
    cg_body_clock_stop(&r->clock, r->wsi);
    r->wsi = NULL;
    r->pss = NULL;
    req_unref(r);
}

/* Answer status and close the connection after it: r's framing cannot be
 * trusted (see the top). */
static int
refuse_framing(struct cg_http_req *r, unsigned status, const char *why)
{
    cg_log_ctx(CG_LOG_INFO, r->addr, "HTTP request for %s refused (%u %s): closing "
               "the connection after the answer", r->path[0] ? r->path : "?", status,
               why);
    r->close_after = 1;
    respond_error(r, status, why);
    return 0;
}

/* Check r's framing before lws reads any of its body (see the top).
 * Returns 1 when r was refused (answered, and the connection will close);
 * else 0 with *len, the length of its body. */
static int
framing_refused(struct cg_http_req *r, uint64_t *len)
{
    switch (cg_request_body_framing(r->wsi, len)) {
    case CG_BODY_CHUNKED:
        refuse_framing(r, 411, "Transfer-Encoding is not supported: send the "
                       "body with a Content-Length");
        return 1;
    case CG_BODY_BAD:
        refuse_framing(r, 400, "bad Content-Length: expected one decimal number");
        return 1;
    case CG_BODY_NONE:
        /* A POST has no body then, but lws would read what follows as one. */
        r->close_after = r->method == CG_M_POST;
        return 0;
    case CG_BODY_LENGTH:
    default:
        break;
    }
    if (*len > (uint64_t)r->srv->cfg->http_max_body) {
        refuse_framing(r, 413, "request body too large");
        return 1;
    }
    if (*len > 0 && r->method != CG_M_POST) {
        /* lws would leave it unread behind a served file, to be parsed
         * as the next request. */
        refuse_framing(r, 400, "unexpected request body: only POST takes one");
        return 1;
    }
    return 0;
}

int
cg_http_on_request(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss,
                   const struct cg_http_route *rt)
{
    struct cg_http_req *r;
    uint64_t len;

    r = cg_calloc(1, sizeof *r);
    if (r == NULL)
        return -1;
    r->srv = srv;
    r->wsi = wsi;
    r->refs = 1;
    cg_wbuf_init(&r->body, 0);
    cg_wbuf_init(&r->resp, LWS_PRE);
    cg_request_client_addr(srv, wsi, r->addr, sizeof r->addr);
    pss->kind = CG_PSS_HTTP;
    pss->obj = r;
    r->pss = pss;

    r->method = rt->method;
    r->handler = rt->handler;
    r->rest = rt->rest;
    r->files = rt->files;
    r->route_status = rt->status;
    if (rt->path != NULL && rt->len < sizeof r->path)
        memcpy(r->path, rt->path, rt->len + 1);
    if (framing_refused(r, &len))
        return 0;
    if (r->path[0] == '\0') {        /* outside the base path, or too long */
        respond_error(r, 404, "not found");
        return 0;
    }
    if (len > 0) {
        cg_body_clock_start(&r->clock, wsi);
        return 0;                     /* a POST's body comes with BODY_COMPLETION */
    }
    return route(r);
}

int
cg_http_on_body(struct cg_pss *pss, const void *in, size_t len)
{
    struct cg_http_req *r = pss ? pss->obj : NULL;

    if (r == NULL || pss->kind != CG_PSS_HTTP || r->responding || r->close_after)
        return 0;                     /* not a body we will read */
    cg_body_clock_add(&r->clock, len);
    if (r->body_over ||
        r->body.len + len > (size_t)r->srv->cfg->http_max_body) {
        r->body_over = 1;
        return 0;
    }
    return cg_wbuf_append(&r->body, in, len) < 0 ? -1 : 0;
}

int
cg_http_on_body_done(struct cg_pss *pss)
{
    struct cg_http_req *r = pss ? pss->obj : NULL;

    if (r == NULL || pss->kind != CG_PSS_HTTP || r->routed || r->responding)
        return 0;
    cg_body_clock_stop(&r->clock, r->wsi);
    if (r->body_over)
        return refuse_framing(r, 413, "request body too large");
    return route(r);
}

/* LWS_CALLBACK_TIMER: the body clock of a request whose body is being
 * read (request.h). Too late or too slow: 408, and the connection closes
 * after the answer (lingering, as after a 413). */
int
cg_http_on_timer(struct cg_pss *pss)
{
    struct cg_http_req *r = pss ? pss->obj : NULL;
    const char *why;

    if (r == NULL || pss->kind != CG_PSS_HTTP || r->wsi == NULL || r->routed ||
        r->responding)
        return 0;
    if ((why = cg_body_clock_check(&r->clock, r->wsi)) == NULL)
        return 0;
    return refuse_framing(r, 408, why);
}

/* Retry-After on a 429 that knows when; Connection: close when the
 * connection ends after this answer. Returns nonzero when out of room. */
static int
add_extra_headers(struct cg_http_req *r, unsigned char **p, unsigned char *end)
{
    char secs[24];
    int n;

    if (r->status == 429 && r->retry_after_s > 0) {
        n = snprintf(secs, sizeof secs, "%lld", (long long)r->retry_after_s);
        if (lws_add_http_header_by_name(r->wsi, (unsigned char *)"retry-after:",
                                        (unsigned char *)secs, n, p, end))
            return 1;
    }
    if (r->close_after &&
        lws_add_http_header_by_name(r->wsi, (unsigned char *)"connection:",
                                    (unsigned char *)"close", 5, p, end))
        return 1;
    return 0;
}

int
cg_http_on_writable(struct cg_pss *pss)
{
    struct cg_http_req *r = pss ? pss->obj : NULL;
    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
                  *end = hdr + sizeof hdr - 1;

    if (r == NULL || pss->kind != CG_PSS_HTTP || !r->responding || r->wsi == NULL)
        return 0;
    if (r->flushing)
        return answered(pss, r);
    if (!r->headers_sent) {
        if (lws_add_http_common_headers(r->wsi, r->status, r->ctype,
                                        (lws_filepos_t)r->resp.len, &p, end) ||
            lws_add_http_header_by_name(r->wsi, (unsigned char *)"cache-control:",
                                        (unsigned char *)"no-store", 8, &p, end) ||
            lws_add_http_header_by_name(r->wsi,
                                        (unsigned char *)"x-content-type-options:",
                                        (unsigned char *)"nosniff", 7, &p, end) ||
            add_extra_headers(r, &p, end) ||
            lws_finalize_write_http_header(r->wsi, start, &p, end))
            return -1;
        r->headers_sent = 1;
        if (r->resp.len > 0 && r->method != CG_M_HEAD) {
            lws_callback_on_writable(r->wsi);
            return 0;
        }
    } else if (lws_write(r->wsi, (unsigned char *)cg_wbuf_data(&r->resp),
                         r->resp.len, LWS_WRITE_HTTP_FINAL) < (int)r->resp.len) {
        return -1;
    }
    return answered(pss, r);
}

/* r's answer is written. Completing the transaction frees lws's
 * per-session data: detach first. A connection to close lingers (linger.h)
 * once lws has handed the whole answer to the kernel, and is then closed
 * by returning -1. */
static int
answered(struct cg_pss *pss, struct cg_http_req *r)
{
    struct lws *wsi = r->wsi;
    struct cg_server *srv = r->srv;
    int close_after = r->close_after;

    if (close_after && lws_partial_buffered(wsi)) {
        r->flushing = 1;              /* lws sends the rest first */
        lws_callback_on_writable(wsi);
        return 0;
    }
    detach(pss);
    if (close_after) {
        if (cg_linger_start(srv->linger, lws_get_socket_fd(wsi)) < 0)
            cg_log(CG_LOG_DEBUG, "lingering close refused: closing at once");
        return -1;
    }
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void
cg_http_on_closed(struct cg_pss *pss)
{
    detach(pss);
}
