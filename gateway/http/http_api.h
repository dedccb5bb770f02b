/* http_api.h - the REST API, health checks, metrics and the web client's
 * files: every HTTP request that is neither a WebSocket nor SockJS. The
 * route table (server/routes.c) decides which request is the API's and
 * which handler runs; http_api.c owns the request from then on. */
#ifndef CG_HTTP_API_H
#define CG_HTTP_API_H

#include <stddef.h>

#include "http/request.h"

/* One request of the API (http_api.c). */
struct cg_http_req;

/* The API's handlers, one per route of the table (PROTOCOL.md section 1).
 * Each runs once r's body has arrived and answers r, now or later; rest is
 * what follows the route's path ("bob" of /api/users/bob; "" for a route
 * that is one exact path). */
typedef void cg_http_handler(struct cg_http_req *r, const char *rest);
void cg_http_register(struct cg_http_req *r, const char *rest);
void cg_http_login(struct cg_http_req *r, const char *rest);
void cg_http_logout(struct cg_http_req *r, const char *rest);
void cg_http_user(struct cg_http_req *r, const char *rest);
void cg_http_healthz(struct cg_http_req *r, const char *rest);
void cg_http_readyz(struct cg_http_req *r, const char *rest);
void cg_http_metrics(struct cg_http_req *r, const char *rest);
/* The backend API (backend_api.c, PROTOCOL.md section 8): POST
 * /api/backend/users, and /api/backend/users/{x}[/action] (rest is
 * "{x}[/action]"). */
void cg_http_backend_users(struct cg_http_req *r, const char *rest);
void cg_http_backend_user(struct cg_http_req *r, const char *rest);
/* POST /api/backend/tokens/revoke: revoke an app token's jti. */
void cg_http_backend_revoke(struct cg_http_req *r, const char *rest);

/* The longest path under the base path the API and the files take,
 * NUL included: the table routes a longer one to nothing (404). */
#define CG_HTTP_PATH_MAX 256

/* What the route table found for a request the API owns. Exactly one of
 * handler, files and status says what to do. */
struct cg_http_route {
    enum cg_http_method method;
    const char      *path;     /* under the base path, NUL-terminated; NULL
                                  when outside it or CG_HTTP_PATH_MAX or
                                  longer: 404 at once, not after the body */
    size_t           len;
    cg_http_handler *handler;  /* the route's handler, run after the body */
    size_t           rest;     /* where in path the handler's rest starts */
    int              files;    /* GET or HEAD of a file of the web client */
    unsigned         status;   /* neither: 404, or 405 (a route knows the
                                  path but not the method) */
};

/* lws's HTTP events of a request the API owns. */
int  cg_http_on_request(struct cg_server *srv, struct lws *wsi, struct cg_pss *pss,
                        const struct cg_http_route *rt);
int  cg_http_on_body(struct cg_pss *pss, const void *in, size_t len);
int  cg_http_on_body_done(struct cg_pss *pss);
int  cg_http_on_timer(struct cg_pss *pss);
int  cg_http_on_writable(struct cg_pss *pss);
void cg_http_on_closed(struct cg_pss *pss);

#endif
