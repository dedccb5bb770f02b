/* routes.h - the one route table: which part owns an HTTP request or a
 * WebSocket upgrade, by its method and its path under the base path.
 *
 * server.c consults it once per request and once per upgrade, and hands
 * the owner the route already parsed (the SockJS URL split into its parts,
 * the API's handler and what follows its path), so no owner looks at the
 * path again. The table points down at handlers declared in http/ and
 * transport/ headers; those parts never see it. */
#ifndef CHATGATE_ROUTES_H
#define CHATGATE_ROUTES_H

#include <stddef.h>

#include "core/context.h"
#include "http/http_api.h"
#include "http/request.h"
#include "transport/sockjs_frame.h"

/* Who owns a request or an upgrade. */
enum cg_route_owner {
    CG_ROUTE_NONE = 0,    /* an upgrade that no endpoint takes: 404 */
    CG_ROUTE_WS,          /* the {base}/client upgrade: transport_ws.c */
    CG_ROUTE_SOCKJS_RAW,  /* the {base}/socketServer/websocket upgrade:
                             transport_ws.c too, as SockJS's raw websocket */
    CG_ROUTE_SOCKJS,      /* the rest of {base}/socketServer and below,
                             upgrades included: sockjs_*.c */
    CG_ROUTE_HTTP,        /* every other request (not an upgrade): an API
                             handler, a file, 404 or 405; http_api.c */
};

struct cg_route {
    enum cg_route_owner   owner;
    enum cg_http_method   method;
    struct cg_sockjs_path sockjs;   /* CG_ROUTE_SOCKJS: the path under the
                                       prefix, parsed */
    struct cg_http_route  http;     /* CG_ROUTE_HTTP */
};

/* The listeners a row is served on (cg_route_find()'s on: one or both). */
#define CG_ROUTES_MAIN    1u   /* the main listener, under the base path */
#define CG_ROUTES_METRICS 2u   /* metrics: metrics_listen's, or the main
                                  one when metrics_listen is empty */

/* Route a request (upgrade 0) or a WebSocket upgrade (1) with method at
 * path, which is relative to the base path and NUL-terminated at len, or
 * NULL when the request is outside the base path, among the rows served
 * where on says. head_flags are the CG_HTTP_HEAD_F_* of the raw request
 * head when it was checked (a connection's first request; else 0): with
 * CG_HTTP_HEAD_F_PATH_FOLDED, a SockJS URL is 404 (its URLs are exact, and
 * lws folded this one). A pure function of its arguments: it reads nothing
 * else, and out's views borrow path. */
void cg_route_find(const char *path, size_t len, enum cg_http_method method,
                   int upgrade, unsigned on, unsigned head_flags, struct cg_route *out);

/* Route wsi's request: which listener it came in on, its path under that
 * listener's base path (into buf, cap bytes; a longer one counts as
 * outside) and its method, then cg_route_find() with head_flags
 * (cg_listener_take_head_flags()). out's views borrow buf. */
void cg_route_request(struct cg_server *srv, struct lws *wsi, int upgrade,
                      unsigned head_flags, char *buf, size_t cap,
                      struct cg_route *out);

#endif
