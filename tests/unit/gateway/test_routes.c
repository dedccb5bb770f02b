/* test_routes.c - server/routes.c: the one route table. Which owner gets a
 * request or an upgrade for each method and path under the base path, and
 * what it is handed (the parsed SockJS URL, the API's handler and rest,
 * 404 or 405, files). One row per case; the rows are the routing that
 * server.c, transport_ws.c (twice) and http_api.c each did before the
 * table, so a change here is a change of behaviour. */
#include "fmacros.h"

#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "http/http_api.h"
#include "http/http_head.h"
#include "server/routes.h"
#include "transport/sockjs_frame.h"

#define NROWS(a) (sizeof(a) / sizeof *(a))

static struct cg_route
find(const char *path, enum cg_http_method m, int upgrade)
{
    struct cg_route rt;

    cg_route_find(path, path ? strlen(path) : 0, m, upgrade,
                  CG_ROUTES_MAIN | CG_ROUTES_METRICS, 0, &rt);
    return rt;
}

/* ---- upgrades ------------------------------------------------------------ */

static const struct {
    const char          *path;
    enum cg_route_owner  owner;
    enum cg_sockjs_route sockjs;    /* owner CG_ROUTE_SOCKJS */
} upgrades[] = {
    { "/client",                    CG_ROUTE_WS,         0 },
    { "/socketServer/websocket",    CG_ROUTE_SOCKJS_RAW, 0 },
    { "/socketServer/0/ab/websocket", CG_ROUTE_SOCKJS,   CG_SJ_WEBSOCKET },
    /* SockJS's filter refuses these itself (its own log line). */
    { "/socketServer",              CG_ROUTE_SOCKJS,     CG_SJ_GREETING },
    { "/socketServer/info",         CG_ROUTE_SOCKJS,     CG_SJ_INFO },
    { "/socketServer/0/ab/xhr",     CG_ROUTE_SOCKJS,     CG_SJ_XHR },
    { "/socketServer/a.b/c/websocket", CG_ROUTE_SOCKJS,  CG_SJ_NOT_FOUND },
    /* Nobody's: 404 at the handshake. */
    { "/client/",                   CG_ROUTE_NONE,       0 },
    { "/clientx",                   CG_ROUTE_NONE,       0 },
    { "/socketServerx/websocket",   CG_ROUTE_NONE,       0 },
    { "/api/login",                 CG_ROUTE_NONE,       0 },
    { "/healthz",                   CG_ROUTE_NONE,       0 },
    { "/",                          CG_ROUTE_NONE,       0 },
    { "/index.html",                CG_ROUTE_NONE,       0 },
};

Test(routes, upgrades)
{
    for (size_t i = 0; i < NROWS(upgrades); i++) {
        struct cg_route rt = find(upgrades[i].path, CG_M_GET, 1);

        cr_expect(eq(int, rt.owner, upgrades[i].owner), "%s", upgrades[i].path);
        if (upgrades[i].owner == CG_ROUTE_SOCKJS)
            cr_expect(eq(int, rt.sockjs.route, upgrades[i].sockjs), "%s",
                      upgrades[i].path);
    }
}

Test(routes, upgrade_outside_the_base_path_is_nobodys)
{
    struct cg_route rt = find(NULL, CG_M_GET, 1);

    cr_expect(eq(int, rt.owner, CG_ROUTE_NONE));
}

Test(routes, the_method_of_an_upgrade_does_not_matter)
{
    cr_expect(eq(int, find("/client", CG_M_POST, 1).owner, CG_ROUTE_WS));
    cr_expect(eq(int, find("/client", CG_M_OTHER, 1).owner, CG_ROUTE_WS));
}

/* ---- SockJS requests ------------------------------------------------------ */

Test(routes, sockjs_gets_its_subtree_parsed_whatever_the_method)
{
    static const enum cg_http_method methods[] = {
        CG_M_GET, CG_M_POST, CG_M_OPTIONS, CG_M_HEAD, CG_M_OTHER,
    };

    for (size_t i = 0; i < NROWS(methods); i++) {
        struct cg_route rt = find("/socketServer/000/abcd1234/xhr_send", methods[i], 0);

        cr_expect(eq(int, rt.owner, CG_ROUTE_SOCKJS));
        cr_expect(eq(int, rt.method, methods[i]));
        cr_expect(eq(int, rt.sockjs.route, CG_SJ_XHR_SEND));
        cr_expect(eq(sz, rt.sockjs.server.len, 3));
        cr_expect(eq(int, memcmp(rt.sockjs.server.ptr, "000", 3), 0));
        cr_expect(eq(sz, rt.sockjs.session.len, 8));
        cr_expect(eq(int, memcmp(rt.sockjs.session.ptr, "abcd1234", 8), 0));
    }
}

Test(routes, sockjs_urls_without_upgrade)
{
    cr_expect(eq(int, find("/socketServer", CG_M_GET, 0).sockjs.route, CG_SJ_GREETING));
    cr_expect(eq(int, find("/socketServer/", CG_M_GET, 0).sockjs.route, CG_SJ_GREETING));
    cr_expect(eq(int, find("/socketServer/info", CG_M_OPTIONS, 0).sockjs.route,
                 CG_SJ_INFO));
    /* The raw websocket's URL without an upgrade is SockJS's to answer. */
    cr_expect(eq(int, find("/socketServer/websocket", CG_M_GET, 0).owner,
                 CG_ROUTE_SOCKJS));
    cr_expect(eq(int, find("/socketServer/websocket", CG_M_GET, 0).sockjs.route,
                 CG_SJ_RAW_WEBSOCKET));
    cr_expect(eq(int, find("/socketServer/iframe.html", CG_M_GET, 0).sockjs.route,
                 CG_SJ_NOT_FOUND));
    /* Not under the prefix: the files'. */
    cr_expect(eq(int, find("/socketServerx", CG_M_GET, 0).owner, CG_ROUTE_HTTP));
    cr_expect(eq(int, find("/socketServerx", CG_M_GET, 0).http.files, 1));
}

Test(routes, long_sockjs_paths_are_still_sockjs)
{
    char path[400];

    memset(path, 'a', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    memcpy(path, "/socketServer/0/", 16);
    cr_expect(eq(int, find(path, CG_M_GET, 0).owner, CG_ROUTE_SOCKJS));
    cr_expect(eq(int, find(path, CG_M_GET, 0).sockjs.route, CG_SJ_NOT_FOUND));
}

/* ---- the HTTP API ---------------------------------------------------------- */

static const struct {
    enum cg_http_method m;
    const char      *path;
    cg_http_handler *handler;     /* else: */
    int              files;       /* else status: */
    unsigned         status;
    const char      *rest;        /* handler: what follows the route */
} api[] = {
    { CG_M_POST,    "/api/register",   cg_http_register, 0, 0, "" },
    { CG_M_POST,    "/api/login",      cg_http_login,    0, 0, "" },
    { CG_M_POST,    "/api/logout",     cg_http_logout,   0, 0, "" },
    { CG_M_GET,     "/api/users/bob",  cg_http_user,     0, 0, "bob" },
    { CG_M_HEAD,    "/api/users/bob",  cg_http_user,     0, 0, "bob" },
    { CG_M_GET,     "/api/users/",     cg_http_user,     0, 0, "" },
    { CG_M_GET,     "/api/users/a/b",  cg_http_user,     0, 0, "a/b" },
    { CG_M_GET,     "/healthz",        cg_http_healthz,  0, 0, "" },
    { CG_M_HEAD,    "/healthz",        cg_http_healthz,  0, 0, "" },
    { CG_M_GET,     "/readyz",         cg_http_readyz,   0, 0, "" },
    { CG_M_GET,     "/metrics",        cg_http_metrics,  0, 0, "" },
    /* A path a route knows, with a method it does not take: 405. */
    { CG_M_GET,     "/api/login",      NULL, 0, 405, NULL },
    { CG_M_HEAD,    "/api/register",   NULL, 0, 405, NULL },
    { CG_M_OPTIONS, "/api/logout",     NULL, 0, 405, NULL },
    { CG_M_POST,    "/api/users/bob",  NULL, 0, 405, NULL },
    { CG_M_POST,    "/healthz",        NULL, 0, 405, NULL },
    { CG_M_OTHER,   "/metrics",        NULL, 0, 405, NULL },
    /* Anything else under /api/: 404, whatever the method. */
    { CG_M_GET,     "/api/",           NULL, 0, 404, NULL },
    { CG_M_GET,     "/api/nope",       NULL, 0, 404, NULL },
    { CG_M_POST,    "/api/login/",     NULL, 0, 404, NULL },
    { CG_M_POST,    "/api/users",      NULL, 0, 404, NULL },
    /* The rest: files for GET and HEAD, 404 for anything else. */
    { CG_M_GET,     "/",               NULL, 1, 0, NULL },
    { CG_M_HEAD,    "/index.html",     NULL, 1, 0, NULL },
    { CG_M_GET,     "/healthz/",       NULL, 1, 0, NULL },
    { CG_M_GET,     "/client",         NULL, 1, 0, NULL },
    { CG_M_GET,     "/api",            NULL, 1, 0, NULL },
    { CG_M_POST,    "/index.html",     NULL, 0, 404, NULL },
    { CG_M_POST,    "/client",         NULL, 0, 404, NULL },
    { CG_M_OPTIONS, "/",               NULL, 0, 404, NULL },
};

Test(routes, http_api)
{
    for (size_t i = 0; i < NROWS(api); i++) {
        struct cg_route rt = find(api[i].path, api[i].m, 0);
        const struct cg_http_route *h = &rt.http;

        cr_expect(eq(int, rt.owner, CG_ROUTE_HTTP), "%s", api[i].path);
        cr_expect(eq(int, h->method, api[i].m), "%s", api[i].path);
        cr_expect(eq(ptr, (void *)h->path, (void *)api[i].path), "%s", api[i].path);
        cr_expect(eq(sz, h->len, strlen(api[i].path)), "%s", api[i].path);
        cr_expect(h->handler == api[i].handler, "%s: handler", api[i].path);
        cr_expect(eq(int, h->files, api[i].files), "%s: files", api[i].path);
        cr_expect(eq(u32, h->status, api[i].status), "%s: status", api[i].path);
        if (api[i].rest != NULL)
            cr_expect(eq(str, (char *)h->path + h->rest, (char *)api[i].rest), "%s",
                      api[i].path);
    }
}

Test(routes, outside_the_base_path_is_404_at_once)
{
    struct cg_route rt = find(NULL, CG_M_POST, 0);

    cr_expect(eq(int, rt.owner, CG_ROUTE_HTTP));
    cr_expect(eq(ptr, (void *)rt.http.path, NULL));
    cr_expect(rt.http.handler == NULL);
    cr_expect(eq(int, rt.http.files, 0));
    cr_expect(eq(u32, rt.http.status, 404));
}

Test(routes, paths_the_api_cannot_keep_are_404_at_once)
{
    char path[CG_HTTP_PATH_MAX + 1];

    memset(path, 'a', sizeof path);
    memcpy(path, "/api/users/", 11);
    path[CG_HTTP_PATH_MAX - 1] = '\0';          /* the longest kept */
    cr_expect(find(path, CG_M_GET, 0).http.handler == cg_http_user);
    path[CG_HTTP_PATH_MAX - 1] = 'a';
    path[CG_HTTP_PATH_MAX] = '\0';              /* one more */
    cr_expect(eq(ptr, (void *)find(path, CG_M_GET, 0).http.path, NULL));
    cr_expect(find(path, CG_M_GET, 0).http.handler == NULL);
    cr_expect(eq(u32, find(path, CG_M_GET, 0).http.status, 404));
}

Test(routes, a_decoded_nul_ends_the_apis_path)
{
    /* http_api.c keeps the path as a C string: "/healthz\0x" is /healthz. */
    static const char path[] = "/healthz\0x";
    struct cg_route rt;

    cg_route_find(path, sizeof path - 1, CG_M_GET, 0, CG_ROUTES_MAIN, 0, &rt);
    cr_expect(rt.http.handler == cg_http_healthz);
    cr_expect(eq(sz, rt.http.rest, 8));
}

/* With metrics_listen set, each listener serves its own rows: the main one
 * no /metrics, the metrics one nothing but /metrics (server.c routes both
 * through this table). */
static struct cg_route
find_on(const char *path, enum cg_http_method m, int upgrade, unsigned on)
{
    struct cg_route rt;

    cg_route_find(path, strlen(path), m, upgrade, on, 0, &rt);
    return rt;
}

Test(routes, the_main_listener_without_metrics)
{
    struct cg_route rt = find_on("/metrics", CG_M_GET, 0, CG_ROUTES_MAIN);

    cr_expect(rt.http.handler == NULL);
    cr_expect(eq(int, rt.http.files, 1));       /* a file named metrics: 404 there */
    cr_expect(find_on("/healthz", CG_M_GET, 0, CG_ROUTES_MAIN).http.handler == cg_http_healthz);
}

Test(routes, the_metrics_listener_serves_only_metrics)
{
    cr_expect(find_on("/metrics", CG_M_GET, 0, CG_ROUTES_METRICS).http.handler == cg_http_metrics);
    cr_expect(find_on("/metrics", CG_M_HEAD, 0, CG_ROUTES_METRICS).http.handler == cg_http_metrics);
    cr_expect(eq(u32, find_on("/metrics", CG_M_POST, 0, CG_ROUTES_METRICS).http.status, 405));
    for (const char *const *p = (const char *const[]){ "/", "/healthz", "/api/login",
                                                        "/index.html", "/metrics/", NULL };
         *p != NULL; p++) {
        struct cg_route rt = find_on(*p, CG_M_GET, 0, CG_ROUTES_METRICS);

        cr_expect(rt.http.handler == NULL, "%s", *p);
        cr_expect(eq(int, rt.http.files, 0), "%s", *p);
        cr_expect(eq(u32, rt.http.status, 404), "%s", *p);
    }
    cr_expect(eq(int, find_on("/client", CG_M_GET, 1, CG_ROUTES_METRICS).owner, CG_ROUTE_NONE));
    cr_expect(eq(int, find_on("/socketServer/info", CG_M_GET, 0, CG_ROUTES_METRICS).owner,
                 CG_ROUTE_HTTP));
}

Test(routes, a_sockjs_path_lws_folded_is_404)
{
    /* "{base}/socketServer//" reaches the table as "/socketServer/" (lws
     * folds "//"): the listener's flag makes it 404, as SockJS requires. */
    static const char *const paths[] = {
        "/socketServer/", "/socketServer", "/socketServer/info",
        "/socketServer/0/ab/xhr",
    };
    struct cg_route rt;

    for (size_t i = 0; i < NROWS(paths); i++) {
        const char *p = paths[i];

        cg_route_find(p, strlen(p), CG_M_GET, 0, CG_ROUTES_MAIN, CG_HTTP_HEAD_F_PATH_FOLDED, &rt);
        cr_expect(eq(int, rt.owner, CG_ROUTE_SOCKJS), "%s", p);
        cr_expect(eq(int, rt.sockjs.route, CG_SJ_NOT_FOUND), "%s", p);
        cg_route_find(p, strlen(p), CG_M_GET, 1, CG_ROUTES_MAIN, CG_HTTP_HEAD_F_PATH_FOLDED, &rt);
        cr_expect(eq(int, rt.owner, CG_ROUTE_NONE), "upgrade %s", p);
        /* Without the flag: as before. */
        cg_route_find(p, strlen(p), CG_M_GET, 0, CG_ROUTES_MAIN, 0, &rt);
        cr_expect(eq(int, rt.owner, CG_ROUTE_SOCKJS), "%s", p);
    }
    cg_route_find("/socketServer/websocket", 23, CG_M_GET, 1, CG_ROUTES_MAIN, CG_HTTP_HEAD_F_PATH_FOLDED, &rt);
    cr_expect(eq(int, rt.owner, CG_ROUTE_NONE));
    /* Other routes keep lws's folding: "//healthz" is /healthz. */
    cg_route_find("/healthz", 8, CG_M_GET, 0, CG_ROUTES_MAIN, CG_HTTP_HEAD_F_PATH_FOLDED, &rt);
    cr_expect(rt.http.handler == cg_http_healthz);
    cg_route_find("/client", 7, CG_M_GET, 1, CG_ROUTES_MAIN, CG_HTTP_HEAD_F_PATH_FOLDED, &rt);
    cr_expect(eq(int, rt.owner, CG_ROUTE_WS));
}
