/* routes.c - the route table (routes.h): every URL the gateway serves, in
 * one place, and the one lookup of it per request or upgrade.
 *
 *   {base}/client                  upgrade         plain WebSocket
 *   {base}/socketServer/websocket  upgrade         SockJS raw WebSocket
 *   {base}/socketServer[/...]      any, upgrades   SockJS (its own URLs)
 *   {base}/api/..., /healthz, ...  per route       the HTTP API
 *   {base}/api/backend/users/...   GET, POST       the backend API (its
 *                                                  handler reads the rest)
 *   {base}/api/backend/tokens/revoke  POST         ... an app token's jti
 *   {base}/api/ anything else      not upgrades    404 (405: known path)
 *   {base}/...                     GET, HEAD       the web client's files
 *   /metrics                       GET, HEAD       metrics (where they are)
 *
 * Each row says on which listener it is served: the main one, or the
 * metrics listener (metrics_listen, no base path). With metrics_listen
 * empty the main listener serves both kinds of row, under its base path;
 * otherwise the metrics listener serves only its rows, and anything else
 * there is 404 (405 for a known path), upgrades included.
 *
 * Rows are tried in order; the first whose path and method match wins.
 * A path that an API row knows, asked with a method that row does not
 * take, is 405 rather than the "/api/" 404 below it. Upgrades match only
 * the rows that take them: anything else is 404 at the handshake.
 *
 * The SockJS prefix is one row: what lies below it (greeting, /info, the
 * {server}/{session}/{transport} URLs) is SockJS's own protocol, parsed
 * here by cg_sockjs_parse_path() (sockjs_frame.c) so that its owner gets
 * it ready, and answered by sockjs_route.c and sockjs_ws.c. */
#include "fmacros.h"

#include <string.h>

#include "core/config.h"
#include "core/context.h"
#include "http/http_api.h"
#include "http/http_head.h"
#include "http/request.h"
#include "server/routes.h"
#include "transport/sockjs_frame.h"

/* Methods a row takes: a bit per enum cg_http_method, and one for a
 * WebSocket upgrade. */
#define R_M(m)     (1u << (m))
#define R_GET      (R_M(CG_M_GET) | R_M(CG_M_HEAD))   /* HEAD goes where GET goes */
#define R_POST     R_M(CG_M_POST)
#define R_ANY      (R_M(CG_M_OTHER) | R_M(CG_M_GET) | R_M(CG_M_POST) | \
                    R_M(CG_M_OPTIONS) | R_M(CG_M_HEAD))
#define R_UPGRADE  (1u << 16)

enum match {
    EXACT,      /* the path itself */
    PREFIX,     /* any path that starts with it ("/api/users/" + a name) */
    SUBTREE,    /* the path itself, or anything below it ("/x", "/x/...") */
};

struct row {
    unsigned            on;        /* CG_ROUTES_MAIN, CG_ROUTES_METRICS */
    unsigned            methods;
    const char         *path;
    enum match          match;
    enum cg_route_owner owner;
    cg_http_handler    *handler;   /* CG_ROUTE_HTTP: the API's handler, or */
    int                 files;     /* the web client's files; neither: 404 */
};

#define MAIN    CG_ROUTES_MAIN
#define METRICS CG_ROUTES_METRICS
#define ROW(methods, path, match, owner) \
    { MAIN, methods, path, match, owner, NULL, 0 }
#define API(on, methods, path, match, handler) \
    { on, methods, path, match, CG_ROUTE_HTTP, handler, 0 }
#define FILES(methods, path, match) \
    { MAIN, methods, path, match, CG_ROUTE_HTTP, NULL, 1 }

/* The SockJS prefix: its owner gets what lies below it. */
#define SOCKJS_PREFIX     "/socketServer"
#define SOCKJS_PREFIX_LEN (sizeof SOCKJS_PREFIX - 1)

static const struct row table[] = {
    ROW(R_UPGRADE,         "/client",                   EXACT,   CG_ROUTE_WS),
    ROW(R_UPGRADE,         SOCKJS_PREFIX "/websocket",  EXACT,   CG_ROUTE_SOCKJS_RAW),
    ROW(R_ANY | R_UPGRADE, SOCKJS_PREFIX,               SUBTREE, CG_ROUTE_SOCKJS),
    API(MAIN,    R_POST,   "/api/register",             EXACT,   cg_http_register),
    API(MAIN,    R_POST,   "/api/login",                EXACT,   cg_http_login),
    API(MAIN,    R_POST,   "/api/logout",               EXACT,   cg_http_logout),
    API(MAIN,    R_GET,    "/api/users/",               PREFIX,  cg_http_user),
    /* The backend API: the handler reads {x}[/action] (backend_api.c). */
    API(MAIN,    R_POST,   "/api/backend/users",        EXACT,   cg_http_backend_users),
    API(MAIN,    R_GET | R_POST, "/api/backend/users/", PREFIX,  cg_http_backend_user),
    API(MAIN,    R_POST,   "/api/backend/tokens/revoke", EXACT,  cg_http_backend_revoke),
    API(MAIN,    R_GET,    "/healthz",                  EXACT,   cg_http_healthz),
    API(MAIN,    R_GET,    "/readyz",                   EXACT,   cg_http_readyz),
    API(METRICS, R_GET,    "/metrics",                  EXACT,   cg_http_metrics),
    API(MAIN,    R_ANY,    "/api/",                     PREFIX,  NULL),   /* 404 */
    FILES(R_GET,           "/",                         PREFIX),
};

static int
path_matches(const struct row *rw, const char *path, size_t len)
{
    size_t n = strlen(rw->path);

    if (len < n || memcmp(path, rw->path, n) != 0)
        return 0;
    switch (rw->match) {
    case EXACT:   return len == n;
    case SUBTREE: return len == n || path[n] == '/';
    case PREFIX:
    default:      return 1;
    }
}

void
cg_route_find(const char *path, size_t len, enum cg_http_method method, int upgrade,
              unsigned on, unsigned head_flags, struct cg_route *out)
{
    const struct row *hit = NULL;
    unsigned want = upgrade ? R_UPGRADE : R_M(method);
    size_t clen;
    int known = 0;

    memset(out, 0, sizeof *out);
    out->owner = upgrade ? CG_ROUTE_NONE : CG_ROUTE_HTTP;
    out->method = method;
    out->http.method = method;
    out->http.status = 404;
    /* The API and the files take the path as a C string (the API keeps a
     * NUL-terminated copy), so a NUL decoded from %00 ends it there. */
    clen = path != NULL ? strnlen(path, len) : 0;
    for (size_t i = 0; path != NULL && i < sizeof table / sizeof *table; i++) {
        const struct row *rw = &table[i];

        if (!(rw->on & on))
            continue;
        if (!path_matches(rw, path, rw->owner == CG_ROUTE_HTTP ? clen : len))
            continue;
        if (!(rw->methods & want)) {
            known |= rw->handler != NULL && !upgrade;
            continue;
        }
        hit = rw;
        break;
    }
    if (hit != NULL && hit->owner != CG_ROUTE_HTTP) {
        /* SockJS's URLs are exact (sockjs-protocol-0.3.3: "//" under the
         * prefix is 404): a path lws had to fold is none of them. */
        if ((head_flags & CG_HTTP_HEAD_F_PATH_FOLDED) &&
            (hit->owner == CG_ROUTE_SOCKJS || hit->owner == CG_ROUTE_SOCKJS_RAW)) {
            if (!upgrade) {
                out->owner = CG_ROUTE_SOCKJS;
                out->sockjs.route = CG_SJ_NOT_FOUND;
            }
            return;                   /* an upgrade: CG_ROUTE_NONE, 404 */
        }
        out->owner = hit->owner;
        if (hit->owner == CG_ROUTE_SOCKJS)
            cg_sockjs_parse_path(path + SOCKJS_PREFIX_LEN, len - SOCKJS_PREFIX_LEN,
                                 &out->sockjs);
        return;
    }
    /* Only the WebSocket and SockJS rows take upgrades. Every other
     * request is the API's: 404 at once when it is outside the base path
     * or too long to keep. */
    if (upgrade || path == NULL || len >= CG_HTTP_PATH_MAX)
        return;
    out->http.path = path;
    out->http.len = len;
    if (known && (hit == NULL || (hit->handler == NULL && !hit->files))) {
        out->http.status = 405;
    } else if (hit != NULL && hit->handler != NULL) {
        out->http.handler = hit->handler;
        out->http.rest = hit->match == PREFIX ? strlen(hit->path) : clen;
        out->http.status = 0;
    } else if (hit != NULL && hit->files) {
        out->http.files = 1;
        out->http.status = 0;
    }
}

/* The request's path relative to base, or NULL when it is outside it (or
 * longer than cap); *len receives its length. */
static const char *
path_under_base(const char *base, struct lws *wsi, char *buf, size_t cap, size_t *len)
{
    size_t blen = strlen(base);
    char *uri = NULL;
    int ulen = 0;

    if (lws_http_get_uri_and_method(wsi, &uri, &ulen) < 0 || uri == NULL ||
        ulen <= 0 || (size_t)ulen >= cap)
        return NULL;
    memcpy(buf, uri, (size_t)ulen);
    buf[ulen] = '\0';
    if (strncmp(buf, base, blen) != 0)
        return NULL;
    if (buf[blen] == '\0') {          /* "{base}" alone is "{base}/" */
        *len = 1;
        return "/";
    }
    if (buf[blen] != '/')
        return NULL;                  /* "/Mimix" is not under "/Mimi" */
    *len = (size_t)ulen - blen;
    return buf + blen;
}

void
cg_route_request(struct cg_server *srv, struct lws *wsi, int upgrade, unsigned head_flags,
                 char *buf, size_t cap, struct cg_route *out)
{
    int metrics = srv->metrics_vhost != NULL && lws_get_vhost(wsi) == srv->metrics_vhost;
    unsigned on = metrics ? CG_ROUTES_METRICS
                : CG_ROUTES_MAIN | (srv->metrics_listener ? 0u : CG_ROUTES_METRICS);
    size_t len = 0;
    const char *path = path_under_base(metrics ? "" : srv->cfg->base_path, wsi, buf, cap, &len);

    cg_route_find(path, len, cg_request_method(wsi), upgrade, on, head_flags, out);
}
